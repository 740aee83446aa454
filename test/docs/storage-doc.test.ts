import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { projectRoot, readProjectFile } from './markdown.ts';

/**
 * docs/storage.md must list every store namespace, counter, lock and channel the code uses (STYLE.md §11: "a
 * storage-schema page listing every key"). The scan reads src/ and examples/ with comments removed and collects:
 * - the first argument of every Store call (`store.get/set/setIfAbsent/consume/delete/findByIndex/deleteByIndex/list/
 *   increment/acquireLock/publish/subscribe`) when it is a string, a template with a literal start, `oidcNamespace('X')`
 *   or a constant holding one;
 * - constants whose name ends in `namespace`, `channel` or `lock` (any case) holding such a value;
 * - `lockName:` values (single-flight) and the namespace passed to the admin `listAll(store, namespace)` helper;
 * - the names a few forwarding modules pass through a parameter (FORWARDERS): any other call whose name the scan
 *   cannot follow fails the test, so a new dynamic call site cannot hide a namespace.
 * It then checks the names against the "Every name" table of docs/storage.md, and the table against the code.
 *
 * The file is long because the scanner (a comment-aware reader of TypeScript: no parser is installed, and the
 * TypeScript 7 package has no JavaScript API) lives beside the only test that uses it, with its own tests below.
 */

type Kind = 'namespace' | 'counter' | 'lock' | 'channel';

export interface Source {
  path: string;
  text: string;
}

interface NameUse {
  /** `namespace-or-counter` for a `*_NAMESPACE` constant, which may name either. */
  kind: Kind | 'namespace-or-counter';
  /** Run-time parts of a template are `*`: `downstream-token:*`. */
  name: string;
  file: string;
  line: number;
}

interface IndexUse {
  namespace: string;
  index: string;
  file: string;
  line: number;
}

interface UnresolvedCall {
  file: string;
  line: number;
  call: string;
  argument: string;
}

export interface ScanResult {
  uses: NameUse[];
  indexes: IndexUse[];
  unresolved: UnresolvedCall[];
  /** A Store held under another name than `store`: calls through it would escape the scan. */
  aliases: { file: string; line: number; name: string }[];
}

// ---------------------------------------------------------------------------------------------------------------
// Reading TypeScript without a parser: comments blanked (so commented-out code and prose never count), strings,
// templates and regular expressions left intact, offsets and line numbers unchanged.

const REGEX_AFTER_WORD = new Set(['return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'new', 'delete', 'void', 'throw', 'yield', 'await']);

export function stripComments(source: string): string {
  const out: string[] = [];
  const blank = (text: string) => text.replace(/[^\n]/g, ' ');
  /** Brace depth at which each open `${` of a template began. */
  const substitutions: number[] = [];
  let depth = 0;
  let previous = '';
  let i = 0;

  const readQuoted = (quote: string): void => {
    let j = i + 1;
    while (j < source.length && source[j] !== quote && source[j] !== '\n') j += source[j] === '\\' ? 2 : 1;
    out.push(source.slice(i, j + 1));
    i = j + 1;
  };
  /** From just after a backtick or a closing `}` of a substitution, to the end of the template or the next `${`. */
  const readTemplatePart = (): void => {
    let j = i;
    for (;;) {
      if (j >= source.length) break;
      if (source[j] === '\\') {
        j += 2;
        continue;
      }
      if (source[j] === '`') {
        j += 1;
        break;
      }
      if (source[j] === '$' && source[j + 1] === '{') {
        j += 2;
        substitutions.push(depth);
        depth += 1;
        break;
      }
      j += 1;
    }
    out.push(source.slice(i, j));
    i = j;
  };
  const regexAllowed = (): boolean => {
    if (previous === '' || '(,=:[!&|?{};+-*%<>~^'.includes(previous)) return true;
    const word = /([A-Za-z_$][\w$]*)\s*$/.exec(out.join('').slice(-40))?.[1];
    return word !== undefined && REGEX_AFTER_WORD.has(word);
  };
  const readRegex = (): void => {
    let j = i + 1;
    let inClass = false;
    while (j < source.length && source[j] !== '\n') {
      const c = source[j];
      if (c === '\\') {
        j += 2;
        continue;
      }
      if (c === '[') inClass = true;
      else if (c === ']') inClass = false;
      else if (c === '/' && !inClass) break;
      j += 1;
    }
    j += 1;
    while (j < source.length && /[a-z]/.test(source[j] ?? '')) j += 1;
    out.push(source.slice(i, j));
    i = j;
  };

  while (i < source.length) {
    const c = source[i] as string;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      const stop = end === -1 ? source.length : end;
      out.push(blank(source.slice(i, stop)));
      i = stop;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? source.length : end + 2;
      out.push(blank(source.slice(i, stop)));
      i = stop;
    } else if (c === "'" || c === '"') {
      readQuoted(c);
      previous = c;
    } else if (c === '`') {
      out.push(c);
      i += 1;
      readTemplatePart();
      previous = '`';
    } else if (c === '/' && regexAllowed()) {
      readRegex();
      previous = '/';
    } else {
      if (c === '{') depth += 1;
      if (c === '}') {
        depth -= 1;
        if (substitutions.length > 0 && substitutions.at(-1) === depth) {
          substitutions.pop();
          out.push(c);
          i += 1;
          readTemplatePart();
          previous = '`';
          continue;
        }
      }
      out.push(c);
      if (!/\s/.test(c)) previous = c;
      i += 1;
    }
  }
  return out.join('');
}

const lineAt = (text: string, index: number): number => text.slice(0, index).split('\n').length;

/**
 * One argument starting at `start`: up to the next top-level `,` or the closing `)` (for a property value also `;` or
 * the end of the line). Returns it and where it ends.
 */
function readArgument(text: string, start: number, property = false): { raw: string; end: number } {
  let depth = 0;
  let i = start;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === "'" || c === '"' || c === '`') {
      // Strings inside an argument: skip to the matching quote (templates here are single-level in practice).
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      i = j + 1;
      continue;
    }
    if ('([{'.includes(c)) depth += 1;
    else if (')]}'.includes(c)) {
      if (depth === 0) break;
      depth -= 1;
    } else if (depth === 0 && (c === ',' || (property && (c === ';' || c === '\n')))) break;
    i += 1;
  }
  return { raw: text.slice(start, i).trim(), end: i };
}

function readArguments(text: string, start: number, count: number, property = false): string[] {
  const args: string[] = [];
  let position = start;
  for (let n = 0; n < count; n += 1) {
    const { raw, end } = readArgument(text, position, property);
    args.push(raw);
    if (text[end] !== ',') break;
    position = end + 1;
  }
  return args;
}

/** The literal value of an expression, or undefined when it is not one the scan can read. */
function literalName(raw: string): string | undefined {
  const quoted = /^'([^'\\]*)'$|^"([^"\\]*)"$/.exec(raw);
  if (quoted) return quoted[1] ?? quoted[2];
  const template = /^`([^`]*)`$/.exec(raw);
  if (template?.[1] !== undefined) {
    // A name must start with a literal part (store names start with a letter or digit): `${prefix}ch:${x}` is not one.
    if (template[1].startsWith('${')) return undefined;
    return template[1].replace(/\$\{[^}]*\}/g, '*');
  }
  const oidc = /^oidcNamespace\(\s*'([^']+)'\s*\)$/.exec(raw);
  if (oidc) return `oidc:${oidc[1]}`;
  return undefined;
}

const STORE_METHODS = 'get|set|setIfAbsent|consume|delete|findByIndex|deleteByIndex|list|increment|acquireLock|publish|subscribe';
const GENERIC = String.raw`(?:<(?:[^<>()]|<(?:[^<>()]|<[^<>()]*>)*>)*>)?`;
const STORE_CALL = new RegExp(String.raw`\bstore\s*\??\.\s*(${STORE_METHODS})\s*${GENERIC}\s*\(`, 'g');
const CONSTANT = /\bconst\s+([A-Za-z_$][\w$]*)\s*(?::[^=;\n]+)?=\s*([^;\n]+)/g;
/** `opened: Store`, `const s = ctx.store;`: every Store must be called `store` for STORE_CALL to see its calls. */
const STORE_ALIAS = /([A-Za-z_$#][\w$]*)\??\s*:\s*Store\b(?!\s*\.)|\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*[\w$.#]*\bstore\s*;/g;
const NAME_CONSTANT = /(?:namespace|channel|lock)$/i;
const LOCK_NAME_PROPERTY = /\blockName\s*:\s*/g;
/** Calls of the admin helper, not its declaration. */
const LIST_ALL_CALL = new RegExp(String.raw`(?<!\bfunction\s+)\blistAll\s*${GENERIC}\s*\(`, 'g');

const kindOfMethod = (method: string): Kind =>
  method === 'increment' ? 'counter' : method === 'acquireLock' ? 'lock' : method === 'publish' || method === 'subscribe' ? 'channel' : 'namespace';

const kindOfConstant = (name: string): NameUse['kind'] =>
  /channel$/i.test(name) ? 'channel' : /lock$/i.test(name) ? 'lock' : 'namespace-or-counter';

/**
 * Modules that take a name as a parameter and pass it to the store. The scan cannot follow the parameter, so each
 * says where its names come from; a dynamic call anywhere else fails the test.
 */
export const FORWARDERS: Record<string, { why: string; names: (text: string) => { kind: Kind; name: string }[] }> = {
  'src/grants/end-grant.ts': {
    why: 'ending a grant removes every grant-bound oidc model (GRANT_BOUND_MODELS of the store adapter)',
    names: () => [],
  },
  'src/store/oidc-adapter.ts': {
    why: 'oidc-provider constructs the adapter once per model; namespace oidc:<Model>',
    // The model names the adapter treats specially (its Sets and lists); the rest are oidc-provider's own models.
    names: (text) =>
      [...text.matchAll(/(?:new Set\(\s*|=\s*)\[([^\]]*)\]/g)].flatMap((list) =>
        [...(list[1] ?? '').matchAll(/'([A-Z][A-Za-z]+)'/g)].map((match) => ({ kind: 'namespace' as const, name: `oidc:${match[1]}` })),
      ),
  },
  'src/proxy/session-bindings.ts': {
    why: 'the namespace is the SessionKind',
    names: (text) => {
      const union = /\btype\s+SessionKind\s*=\s*([^;]+);/.exec(text)?.[1] ?? '';
      return [...union.matchAll(/'([^']+)'/g)].map((match) => ({ kind: 'namespace', name: match[1] ?? '' }));
    },
  },
  'src/admin/admin-deps.ts': { why: 'listAll(store, namespace): its callers are scanned', names: () => [] },
  'src/broker/single-flight.ts': { why: 'singleFlight({ lockName }): `lockName:` values are scanned', names: () => [] },
  'src/observability/instrumented-store.ts': { why: 'a Store decorator (metrics): it passes on its callers\' names', names: () => [] },
  'src/store/store-health.ts': { why: 'a Store decorator (the outage breaker): it passes on its callers\' names', names: () => [] },
};

export function scanSources(sources: Source[]): ScanResult {
  const stripped = sources.map((source) => ({ path: source.path, text: stripComments(source.text) }));
  const result: ScanResult = { uses: [], indexes: [], unresolved: [], aliases: [] };

  // Constants holding a name, per file (resolution prefers the file's own definition, then a unique global one).
  const local = new Map<string, Map<string, string>>();
  const global = new Map<string, Set<string>>();
  for (const { path, text } of stripped) {
    const constants = new Map<string, string>();
    for (const match of text.matchAll(CONSTANT)) {
      const [, identifier = '', value = ''] = match;
      const name = literalName(value.trim());
      if (name === undefined) continue;
      constants.set(identifier, name);
      global.set(identifier, (global.get(identifier) ?? new Set()).add(name));
      if (NAME_CONSTANT.test(identifier)) result.uses.push({ kind: kindOfConstant(identifier), name, file: path, line: lineAt(text, match.index) });
    }
    local.set(path, constants);
  }
  const resolve = (raw: string, path: string): string | undefined => {
    const literal = literalName(raw);
    if (literal !== undefined) return literal;
    if (!/^[A-Za-z_$][\w$]*$/.test(raw)) return undefined;
    const own = local.get(path)?.get(raw);
    if (own !== undefined) return own;
    const candidates = global.get(raw);
    return candidates?.size === 1 ? [...candidates][0] : undefined;
  };

  for (const { path, text } of stripped) {
    for (const match of text.matchAll(STORE_CALL)) {
      const method = match[1] ?? '';
      const line = lineAt(text, match.index);
      const [first = '', second = '', , fourth = ''] = readArguments(text, match.index + match[0].length, 4);
      const name = resolve(first, path);
      if (name === undefined) {
        result.unresolved.push({ file: path, line, call: `store.${method}`, argument: first });
        continue;
      }
      result.uses.push({ kind: kindOfMethod(method), name, file: path, line });
      if (method === 'findByIndex' || method === 'deleteByIndex') {
        const index = resolve(second, path);
        if (index !== undefined) result.indexes.push({ namespace: name, index, file: path, line });
      }
      if (method === 'set' || method === 'setIfAbsent') {
        // Inline `indexes: { subject }` / `{ grantId: g }` in the options; an indexes variable is not followed.
        const inline = /\bindexes\s*:\s*\{([^}]*)\}/.exec(fourth)?.[1] ?? '';
        for (const entry of inline.split(',')) {
          const index = /^\s*([A-Za-z_$][\w$]*)\s*(?::|$)/.exec(entry)?.[1];
          if (index !== undefined) result.indexes.push({ namespace: name, index, file: path, line });
        }
      }
    }
    const collect = (pattern: RegExp, kind: Kind, argumentIndex: number, property = false) => {
      for (const match of text.matchAll(pattern)) {
        const raw = readArguments(text, match.index + match[0].length, argumentIndex + 1, property)[argumentIndex] ?? '';
        if (raw === 'string' || raw === '') continue; // the property's type in an interface, not a value
        const line = lineAt(text, match.index);
        const name = resolve(raw, path);
        if (name === undefined) result.unresolved.push({ file: path, line, call: match[0].replace(/\s+/g, ''), argument: raw });
        else result.uses.push({ kind, name, file: path, line });
      }
    };
    collect(LOCK_NAME_PROPERTY, 'lock', 0, true);
    collect(LIST_ALL_CALL, 'namespace', 1);
    // `oidcNamespace('Grant')` anywhere names a namespace, whether or not it is stored in a constant first.
    for (const match of text.matchAll(/\boidcNamespace\(\s*'([^']+)'\s*\)/g)) {
      result.uses.push({ kind: 'namespace', name: `oidc:${match[1]}`, file: path, line: lineAt(text, match.index) });
    }
    for (const match of text.matchAll(STORE_ALIAS)) {
      const name = match[1] ?? match[2] ?? '';
      if (name !== 'store') result.aliases.push({ file: path, line: lineAt(text, match.index), name });
    }
    const forwarder = FORWARDERS[path];
    if (forwarder) {
      for (const use of forwarder.names(text)) result.uses.push({ ...use, file: path, line: 0 });
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// The documentation side.

interface DocumentedName {
  kind: Kind;
  name: string;
  indexes: string[];
  owners: string[];
  line: number;
}

/** `<cache key>` and `*` both stand for a run-time part. */
const normalize = (name: string): string => name.replace(/<[^>]*>/g, '*');

export function documentedNames(markdown: string): DocumentedName[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => /^## Every name\s*$/.test(line));
  assert.notEqual(start, -1, 'docs/storage.md has no "## Every name" section');
  const rows: DocumentedName[] = [];
  for (let i = start + 1; i < lines.length && !(lines[i] ?? '').startsWith('## '); i += 1) {
    const match = /^\| (namespace|counter|lock|channel) \| `([^`]+)` \| ([^|]*) \| (.+) \|$/.exec(lines[i] ?? '');
    if (!match) continue;
    const ticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((item) => item[1] ?? '');
    rows.push({ kind: match[1] as Kind, name: match[2] ?? '', indexes: ticked(match[3] ?? ''), owners: ticked(match[4] ?? ''), line: i + 1 });
  }
  return rows;
}

const kindMatches = (used: NameUse['kind'], documented: Kind): boolean =>
  used === documented || (used === 'namespace-or-counter' && (documented === 'namespace' || documented === 'counter'));

/** oidc-provider models are named by oidc-provider, not by our code: `oidc:PushedAuthorizationRequest` is its model file. */
const isOidcProviderModel = (name: string): boolean => {
  const model = /^oidc:([A-Z][A-Za-z]+)$/.exec(name)?.[1];
  if (model === undefined) return false;
  const file = model.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase();
  return existsSync(join(projectRoot, 'node_modules', 'oidc-provider', 'lib', 'models', `${file}.js`));
};

export function findProblems(scan: ScanResult, documented: DocumentedName[]): { missing: string[]; stale: string[]; other: string[] } {
  const byName = new Map(documented.map((row) => [normalize(row.name), row]));
  const missing: string[] = [];
  const other: string[] = [];
  for (const use of scan.uses) {
    const row = byName.get(normalize(use.name));
    const where = use.line > 0 ? `${use.file}:${use.line}` : use.file;
    if (row === undefined) missing.push(`${where}: ${use.kind} "${use.name}" is not in docs/storage.md "Every name"`);
    else if (!kindMatches(use.kind, row.kind)) other.push(`${where}: "${use.name}" is used as a ${use.kind}; docs/storage.md says ${row.kind}`);
  }
  for (const call of scan.unresolved) {
    if (FORWARDERS[call.file]) continue;
    other.push(
      `${call.file}:${call.line}: ${call.call}(${call.argument}, …) takes its name from something the scan cannot follow; ` +
        'use a literal or a constant, or add the module to FORWARDERS in test/docs/storage-doc.test.ts',
    );
  }
  for (const alias of scan.aliases) {
    other.push(`${alias.file}:${alias.line}: a Store named "${alias.name}"; name it \`store\` so the scan sees its calls`);
  }
  for (const use of scan.indexes) {
    const row = byName.get(normalize(use.namespace));
    if (row !== undefined && !row.indexes.includes(use.index)) {
      other.push(`${use.file}:${use.line}: index "${use.index}" of ${use.namespace} is not in its docs/storage.md row`);
    }
  }

  const stale: string[] = [];
  const seen = new Map<string, Set<string>>();
  for (const use of scan.uses) {
    const key = normalize(use.name);
    seen.set(key, (seen.get(key) ?? new Set()).add(use.file));
  }
  const counted = new Map<string, number>();
  for (const row of documented) {
    const key = normalize(row.name);
    counted.set(key, (counted.get(key) ?? 0) + 1);
    if (counted.get(key) === 2) other.push(`docs/storage.md:${row.line}: "${row.name}" is listed twice`);
    const files = seen.get(key);
    if (files === undefined) {
      if (!isOidcProviderModel(row.name)) stale.push(`docs/storage.md:${row.line}: ${row.kind} "${row.name}" is not used anywhere in src/`);
    } else if (!row.owners.some((owner) => files.has(owner))) {
      other.push(`docs/storage.md:${row.line}: "${row.name}" names owner ${row.owners.join(', ') || '(none)'}, but it is used in ${[...files].join(', ')}`);
    }
  }
  return { missing, stale, other };
}

// ---------------------------------------------------------------------------------------------------------------

function typeScriptFiles(directory: string): string[] {
  const root = join(projectRoot, directory);
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts') && !name.includes('node_modules'))
    .map((name) => `${directory}/${name.split('\\').join('/')}`)
    .sort();
}

describe('docs/storage.md', () => {
  const sources = [...typeScriptFiles('src'), ...typeScriptFiles('examples')].map((path) => ({ path, text: readProjectFile(path) }));
  const scan = scanSources(sources);
  const documented = documentedNames(readProjectFile('docs/storage.md'));
  const problems = findProblems(scan, documented);

  it('the scan sees the store being used (so an empty result cannot pass)', () => {
    assert.ok(sources.length > 50, `only ${sources.length} source files found`);
    for (const name of ['upstream-tokens', 'keys-changed', 'oidc:Grant', 'downstream-token:*']) {
      assert.ok(scan.uses.some((use) => use.name === name), `the scan did not find ${name}`);
    }
  });

  it('lists every namespace, counter, lock and channel used in src/', () => {
    assert.deepEqual(problems.missing, []);
  });

  it('lists nothing the code no longer uses', () => {
    assert.deepEqual(problems.stale, []);
  });

  it('gives each name the right kind, owner and indexes, and every dynamic name a known source', () => {
    assert.deepEqual(problems.other, []);
  });

  it('every FORWARDERS module still passes a name through a parameter', () => {
    const forwarding = new Set(scan.unresolved.map((call) => call.file));
    assert.deepEqual(Object.keys(FORWARDERS).filter((file) => !forwarding.has(file)), []);
  });
});

describe('the storage scan itself', () => {
  const scanOne = (text: string, path = 'src/x/y.ts') => scanSources([{ path, text }]);

  it('reads literal, template and constant names and ignores comments', () => {
    const scan = scanOne(`
      // await store.set('commented-out', k, v);
      /* store.publish('in-a-block-comment', m) */
      const url = 'https://example.test//not-a-comment'; const pattern = /['"]/g;
      export const THING_NAMESPACE = 'thing';
      const WAKE_CHANNEL = "wake";
      await ctx.store.set(THING_NAMESPACE, key, value, { ttlSeconds: 5, indexes: { subject, grantId: g } });
      await deps.store.findByIndex<{ at?: number }>('other', 'owner', id);
      await store.acquireLock(\`refresh:\${hash(key)}\`, 1000);
      await store.increment('hits', ip, 60);
      await this.#store.publish(WAKE_CHANNEL, 'x');
    `);
    const names = scan.uses.map((use) => `${use.kind} ${use.name}`).sort();
    assert.deepEqual(names, [
      'channel wake',
      'channel wake',
      'counter hits',
      'lock refresh:*',
      'namespace other',
      'namespace thing',
      'namespace-or-counter thing',
    ]);
    assert.deepEqual(scan.indexes.map((use) => `${use.namespace}.${use.index}`).sort(), ['other.owner', 'thing.grantId', 'thing.subject']);
    assert.deepEqual(scan.unresolved, []);
  });

  it('reports a Store held under another name', () => {
    const scan = scanOne('function f(db: Store, store: Store) {\n  const s = ctx.store;\n}\n');
    assert.deepEqual(scan.aliases.map((alias) => `${alias.line} ${alias.name}`), ['1 db', '2 s']);
  });

  it('reports a name it cannot follow, with file and line', () => {
    const scan = scanOne('const x = 1;\nawait store.get(pickNamespace(), key);\n', 'src/a/b.ts');
    assert.deepEqual(scan.unresolved, [{ file: 'src/a/b.ts', line: 2, call: 'store.get', argument: 'pickNamespace()' }]);
    const problems = findProblems(scan, []);
    assert.equal(problems.other.length, 1);
    assert.match(problems.other[0] ?? '', /^src\/a\/b\.ts:2: store\.get\(pickNamespace\(\)/);
  });

  it('fails for an undocumented name, naming the file, and for a stale row', () => {
    const scan = scanOne("await store.set('fresh', k, v);\n", 'src/a/c.ts');
    const row = { kind: 'namespace' as const, name: 'gone', indexes: [], owners: ['src/a/c.ts'], line: 9 };
    const problems = findProblems(scan, [row]);
    assert.deepEqual(problems.missing, ['src/a/c.ts:1: namespace "fresh" is not in docs/storage.md "Every name"']);
    assert.deepEqual(problems.stale, ['docs/storage.md:9: namespace "gone" is not used anywhere in src/']);
  });

  it('matches `<part>` in the docs to a template in the code, and checks the kind', () => {
    const scan = scanOne('await store.acquireLock(`job:${id}`, 10);\n', 'src/a/d.ts');
    const asLock = findProblems(scan, [{ kind: 'lock', name: 'job:<id>', indexes: [], owners: ['src/a/d.ts'], line: 1 }]);
    assert.deepEqual([...asLock.missing, ...asLock.stale, ...asLock.other], []);
    const asChannel = findProblems(scan, [{ kind: 'channel', name: 'job:<id>', indexes: [], owners: ['src/a/d.ts'], line: 1 }]);
    assert.equal(asChannel.other.length, 1);
  });
});
