import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { catalogue, type CatalogueSection } from '../src/records/catalogue.ts';
import type { StoreDefinition } from '../src/store/define-record.ts';

/**
 * Writes the generated block of docs/storage.md (every name, and per area the key, value shape, TTL, indexes,
 * single use, secrets and layout) from the records catalogue (src/records/catalogue.ts). The hand-written sections
 * around the block (the model, the SQLite and Redis layouts, oidc-provider's specifics) are kept as they are.
 * test/docs/storage-doc.test.ts fails when the committed page differs from what this writes.
 *
 *   node scripts/gen-storage-docs.ts           rewrite docs/storage.md
 *   node scripts/gen-storage-docs.ts --check   exit 1 if it is out of date
 */

export const STORAGE_DOC_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'storage.md');
const BEGIN = '<!-- storage:begin (written by node scripts/gen-storage-docs.ts from src/records/catalogue.ts) -->';
const END = '<!-- storage:end -->';

/** The page with its generated block replaced; the text around the markers is kept. */
export function renderStorageDoc(current: string): string {
  const start = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  if (start < 0 || end < start) throw new Error(`docs/storage.md has no ${BEGIN} … ${END} block`);
  return `${current.slice(0, start)}${BEGIN}\n${renderBlock()}\n${END}${current.slice(end + END.length)}`;
}

function renderBlock(): string {
  return [renderEveryName(), '## Namespaces', '', ...catalogue.map(renderSection)].join('\n');
}

function renderEveryName(): string {
  const lines = [
    '## Every name',
    '',
    'The complete list, one row per declaration. `kind` is how the name is used: `namespace` (records: `get`/`set`/',
    '`consume`/…), `counter` (`increment`), `lock` (`acquireLock`) or `channel` (`publish`/`subscribe`). `<…>` stands',
    'for a part chosen at run time. Details follow under [Namespaces](#namespaces).',
    '',
    '| kind | name | indexes | single use | owner |',
    '|---|---|---|---|---|',
  ];
  for (const definition of catalogue.flatMap((section) => section.entries)) {
    const indexes = definition.kind === 'namespace' && definition.indexes.length > 0 ? definition.indexes.map(code).join(', ') : '—';
    const singleUse = definition.kind === 'namespace' && definition.singleUse ? 'yes' : '—';
    lines.push(`| ${definition.kind} | ${code(nameOf(definition))} | ${indexes} | ${singleUse} | ${code(definition.owner)} |`);
  }
  return `${lines.join('\n')}\n`;
}

function renderSection(section: CatalogueSection): string {
  const lines = [`### ${section.title}`, '', section.intro, ''];
  lines.push('| name | key | value | TTL | indexes | secrets |', '|---|---|---|---|---|---|');
  for (const definition of section.entries) lines.push(row(definition));
  lines.push('');
  for (const definition of section.entries) lines.push(`- ${code(nameOf(definition))}${singleUseNote(definition)}: ${definition.description} ${layout(definition)}`);
  lines.push('');
  return lines.join('\n');
}

function row(definition: StoreDefinition): string {
  const cells = (() => {
    switch (definition.kind) {
      case 'namespace':
        return [
          definition.key,
          code(describeSchema(definition.schema)),
          definition.ttl,
          definition.indexes.length > 0 ? definition.indexes.map(code).join(', ') : '—',
          definition.secrets,
        ];
      case 'counter':
        return [definition.key, 'integer', definition.ttl, '—', '—'];
      case 'lock':
        return ['—', 'holder token', definition.ttl, '—', '—'];
      case 'channel':
        return ['—', `message: ${definition.message}`, '—', '—', '—'];
    }
  })();
  return `| ${definition.kind === 'namespace' ? '' : `${definition.kind} `}${code(nameOf(definition))} | ${cells.map(cell).join(' | ')} |`;
}

function singleUseNote(definition: StoreDefinition): string {
  return definition.kind === 'namespace' && definition.singleUse ? ' (single use: read with `consume`)' : '';
}

function nameOf(definition: StoreDefinition): string {
  switch (definition.kind) {
    case 'namespace':
    case 'counter':
      return definition.namespace;
    case 'lock':
      return definition.key === undefined ? definition.name : `${definition.name}:<${definition.key}>`;
    case 'channel':
      return definition.name;
  }
}

function layout(definition: StoreDefinition): string {
  const name = nameOf(definition);
  switch (definition.kind) {
    case 'namespace': {
      const sqliteIndexes = definition.indexes.map((index) => ` + \`record_indexes ('${name}', '${index}', <value>, <key>)\``).join('');
      const redisIndexes = definition.indexes.map((index) => `, \`{P}i:${name}#${index}=<value>\``).join('');
      return `Layout: SQLite \`records ('${name}', <key>)\`${sqliteIndexes}; Redis \`{P}r:${name}#<key>\`, \`{P}l:${name}\`${redisIndexes}.`;
    }
    case 'counter':
      return `Layout: SQLite \`counters ('${name}', <key>)\`; Redis \`{P}c:${name}#<key>\`.`;
    case 'lock':
      return `Layout: SQLite \`locks ('${name}')\`; Redis \`{P}lock:${name}\`.`;
    case 'channel':
      return `Layout: Redis channel \`{P}ch:${name}\` (SQLite delivers in-process).`;
  }
}

/** A zod schema as a compact TypeScript-like shape: `{ subject: string, groups: string[], name?: string }`. */
export function describeSchema(schema: z.ZodType): string {
  // A schema that names itself (`.describe('ErrorCode')`) is shown by that name rather than spelled out.
  if (schema.description !== undefined) return schema.description;
  const def = (schema as unknown as { def: SchemaDef }).def;
  switch (def.type) {
    case 'object': {
      const fields = Object.entries(def.shape ?? {}).map(([key, field]) => {
        const optional = (field as unknown as { def: SchemaDef }).def.type === 'optional';
        return `${key}${optional ? '?' : ''}: ${describeSchema(optional ? unwrapOptional(field) : field)}`;
      });
      if (def.catchall !== undefined && (def.catchall as unknown as { def: SchemaDef }).def.type === 'unknown') fields.push('…');
      return fields.length === 0 ? '{}' : `{ ${fields.join(', ')} }`;
    }
    case 'array':
      return `${describeSchema(def.element as z.ZodType)}[]`;
    case 'optional':
      return `${describeSchema(unwrapOptional(schema))} | undefined`;
    case 'enum':
      return Object.values(def.entries ?? {}).map((value) => `'${String(value)}'`).join(' | ');
    case 'literal':
      return (def.values ?? []).map((value) => JSON.stringify(value)).join(' | ');
    case 'record':
      return `{ [${describeSchema(def.keyType as z.ZodType)}]: ${describeSchema(def.valueType as z.ZodType)} }`;
    default:
      return def.type;
  }
}

interface SchemaDef {
  type: string;
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  element?: z.ZodType;
  innerType?: z.ZodType;
  entries?: Record<string, unknown>;
  values?: unknown[];
  keyType?: z.ZodType;
  valueType?: z.ZodType;
}

function unwrapOptional(schema: z.ZodType): z.ZodType {
  return (schema as unknown as { def: SchemaDef }).def.innerType as z.ZodType;
}

const code = (text: string): string => `\`${text}\``;
const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

if (import.meta.main) {
  const current = readFileSync(STORAGE_DOC_PATH, 'utf8');
  const next = renderStorageDoc(current);
  if (process.argv.includes('--check')) {
    if (next !== current) {
      console.error('docs/storage.md is out of date: run node scripts/gen-storage-docs.ts');
      process.exit(1);
    }
  } else {
    writeFileSync(STORAGE_DOC_PATH, next);
  }
}
