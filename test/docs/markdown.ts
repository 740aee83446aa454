import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { configSchema } from '../../src/config/schema.ts';
import { defOf, unwrap, type SchemaNode } from '../../src/config/schema-introspection.ts';

/**
 * Reading the repository's Markdown the way the docs tests need: fenced blocks with their info string, the prose
 * outside them, GitHub's heading anchors, and every configuration key path the zod schema accepts.
 */

export const projectRoot = resolve(import.meta.dirname, '..', '..');

/** README.md and every page under docs/, as paths relative to the project root. */
export function documentationFiles(): string[] {
  const pages = readdirSync(join(projectRoot, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...pages];
}

export const readProjectFile = (path: string): string => readFileSync(join(projectRoot, path), 'utf8');

export interface FencedBlock {
  /** The info string after the opening fence, trimmed (`yaml`, `yaml kubernetes`, `sh`, or ''). */
  info: string;
  body: string;
  /** 1-based line of the opening fence, for messages. */
  line: number;
}

export interface ParsedMarkdown {
  blocks: FencedBlock[];
  /** The text outside fenced blocks, line numbers kept (block lines become empty lines). */
  prose: string;
}

/** CommonMark fences: ``` or ~~~ (three or more), closed by the same character at least as long. */
export function parseMarkdown(text: string): ParsedMarkdown {
  const blocks: FencedBlock[] = [];
  const prose: string[] = [];
  let open: { char: string; length: number; info: string; line: number; body: string[] } | undefined;
  text.split('\n').forEach((line, index) => {
    const fence = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
    if (open) {
      const closing = fence?.[1];
      if (closing && closing[0] === open.char && closing.length >= open.length && fence?.[2]?.trim() === '') {
        blocks.push({ info: open.info, body: open.body.join('\n'), line: open.line });
        open = undefined;
      } else {
        open.body.push(line);
      }
      prose.push('');
    } else if (fence?.[1]) {
      open = { char: fence[1][0] as string, length: fence[1].length, info: (fence[2] ?? '').trim(), line: index + 1, body: [] };
      prose.push('');
    } else {
      prose.push(line);
    }
  });
  if (open) throw new Error(`unclosed code fence opened on line ${open.line}`);
  return { blocks, prose: prose.join('\n') };
}

/**
 * The anchors GitHub gives the headings of a page: lower-cased, punctuation dropped, spaces to dashes, a `-N` suffix
 * for repeats. Inline code and link syntax are reduced to their text first.
 */
export function headingAnchors(prose: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of prose.split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading?.[1]) continue;
    const text = heading[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/`/g, '');
    const slug = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/**
 * Every key path the configuration schema accepts, dotted, with `*` where a record takes any key
 * (`routes.tools.*.scopes`). Lists are transparent (`broker.downstream.name`) and every branch of a union counts
 * (`upstream.clientAuth.tokenFile` from the `federated` branch). Intermediate objects are included.
 */
export function configKeyPaths(root: SchemaNode = configSchema): Set<string> {
  const paths = new Set<string>();
  const walk = (node: SchemaNode, prefix: string[]): void => {
    const inner = unwrap(node).node;
    const def = defOf(inner);
    if (def.type === 'object') {
      for (const [key, child] of Object.entries(def.shape ?? {})) {
        const path = [...prefix, key];
        paths.add(path.join('.'));
        walk(child, path);
      }
    } else if (def.type === 'array' && def.element) {
      walk(def.element, prefix);
    } else if (def.type === 'record' && def.valueType) {
      const path = [...prefix, '*'];
      paths.add(path.join('.'));
      walk(def.valueType, path);
    } else if (def.type === 'union') {
      for (const option of def.options ?? []) walk(option, prefix);
    }
  };
  walk(root, []);
  return paths;
}

/** True when `candidate` (dotted, list indexes already removed) is one of `paths`, `*` matching any one segment. */
export function isConfigKeyPath(candidate: string, paths: Set<string>): boolean {
  if (paths.has(candidate)) return true;
  const segments = candidate.split('.');
  for (const path of paths) {
    const pattern = path.split('.');
    if (pattern.length === segments.length && pattern.every((part, i) => part === '*' || part === segments[i])) return true;
  }
  return false;
}
