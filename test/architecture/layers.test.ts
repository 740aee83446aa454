import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { describe, it } from 'node:test';

/**
 * Which folders of src/ may import which. Dependencies point down only: cli → app → parts → shared contracts →
 * store/keys/config/runtime. A contract several parts use lives below all of them (records, grants, errors,
 * observability, protocol), never inside the part that happened to need it first; only app/ (and the CLI above it)
 * wires parts together. Parts are ordered too: a part may use a part listed before it, never a peer or one after.
 *
 * Checked on every `npm test`, with no exceptions list: a new upward import fails here, naming the file and line.
 */
const FOUNDATION = ['runtime', 'web', 'protocol', 'errors', 'config', 'store', 'keys', 'observability', 'context'];
const SHARED = [...FOUNDATION, 'records', 'grants', 'server'];

const allowed: Record<string, readonly string[]> = {
  // Foundation, bottom up.
  runtime: [],
  web: [],
  protocol: [],
  errors: ['web', 'protocol'],
  config: ['runtime', 'errors', 'protocol'],
  store: ['runtime', 'config', 'errors'],
  keys: ['runtime', 'config', 'store', 'errors'],
  observability: ['runtime', 'store'],
  context: ['runtime', 'config', 'store', 'keys'],
  // Shared contracts and the HTTP skeleton every part mounts on.
  records: ['runtime', 'store', 'keys', 'errors', 'protocol'],
  grants: ['runtime', 'store', 'errors', 'records', 'protocol'],
  server: [...FOUNDATION],
  // The parts, in order.
  upstream: [...SHARED],
  broker: [...SHARED, 'upstream'],
  authorization: [...SHARED, 'upstream'],
  proxy: [...SHARED, 'broker'],
  admin: [...SHARED, 'upstream', 'broker', 'authorization', 'proxy'],
  // Development stand-ins: the local IdP, directory API and workload issuer use only shared code; run-demo starts
  // the sample server of examples/.
  demo: [...SHARED, 'examples'],
  // Wiring and the command line.
  app: [...SHARED, 'upstream', 'broker', 'authorization', 'proxy', 'admin', 'demo'],
  cli: [...SHARED, 'upstream', 'broker', 'authorization', 'proxy', 'admin', 'demo', 'app'],
};

const root = join(import.meta.dirname, '..', '..');
const src = join(root, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The top folder of a path under the repository: `src/<area>/…` → area; `examples/…` → examples. */
function areaOf(path: string): string | undefined {
  const parts = relative(root, path).split(sep);
  if (parts[0] === 'src') return parts.length > 2 ? parts[1] : undefined;
  return parts[0];
}

interface ImportEdge {
  file: string;
  line: number;
  from: string;
  to: string;
}

function importEdges(): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of sourceFiles(src)) {
    const from = areaOf(file);
    if (from === undefined) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((text, index) => {
        for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
          const to = areaOf(normalize(join(dirname(file), match[1] ?? '')));
          if (to !== undefined && to !== from) edges.push({ file: relative(root, file), line: index + 1, from, to });
        }
      });
  }
  return edges;
}

describe('layers', () => {
  const edges = importEdges();

  it('every folder of src/ has a place in the layer map', () => {
    const areas = readdirSync(src, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    assert.deepEqual(areas.filter((area) => !Object.hasOwn(allowed, area)), [], 'add the new folder to the map above');
  });

  it('no folder imports one above it (no exceptions)', () => {
    assert.ok(edges.length > 50, 'the scan found the imports');
    const violations = edges
      .filter((edge) => !(allowed[edge.from] ?? []).includes(edge.to))
      .map((edge) => `${edge.file}:${edge.line}: ${edge.from} → ${edge.to}`);
    assert.deepEqual(violations, []);
  });

  it('only app/ and the CLI import more than one part', () => {
    const parts = new Set(['upstream', 'broker', 'authorization', 'proxy', 'admin']);
    const byArea = new Map<string, Set<string>>();
    for (const edge of edges) {
      if (!parts.has(edge.to)) continue;
      const set = byArea.get(edge.from) ?? new Set<string>();
      set.add(edge.to);
      byArea.set(edge.from, set);
    }
    const wiring = [...byArea].filter(([area, used]) => used.size > 1 && !['app', 'cli', 'admin'].includes(area)).map(([area]) => area);
    assert.deepEqual(wiring, [], 'a part that wires several others belongs in app/');
  });

  it('the map itself points down: no folder may import one that may import it', () => {
    for (const [area, deps] of Object.entries(allowed)) {
      for (const dep of deps) assert.ok(!(allowed[dep] ?? []).includes(area), `${area} ⇄ ${dep}`);
    }
  });
});
