import { readFileSync } from 'node:fs';

/**
 * `node bench/heap-summary.ts <file.heapsnapshot> [top]`: the heap by what holds it — self size and count per
 * constructor (or node type for strings, code and arrays), largest first. With N idle streams open, a row that
 * grows by about N objects is something each stream keeps alive.
 */
interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  strings: string[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) throw new Error('usage: node bench/heap-summary.ts <file.heapsnapshot> [top]');
const snapshot = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const fields = snapshot.snapshot.meta.node_fields;
const types = snapshot.snapshot.meta.node_types[0];
const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((field) => fields.indexOf(field));
const rows = new Map<string, { count: number; size: number }>();
for (let index = 0; index < snapshot.nodes.length; index += fields.length) {
  const type = types[snapshot.nodes[index + typeAt!]!] ?? '?';
  const name = type === 'object' || type === 'closure' ? `${type} ${snapshot.strings[snapshot.nodes[index + nameAt!]!]}` : `(${type})`;
  const row = rows.get(name) ?? { count: 0, size: 0 };
  row.count += 1;
  row.size += snapshot.nodes[index + sizeAt!]!;
  rows.set(name, row);
}
const top = Number(topArg ?? 40);
process.stdout.write('| what | count | self size (KB) |\n|---|---:|---:|\n');
for (const [name, row] of [...rows].sort((a, b) => b[1].size - a[1].size).slice(0, top)) {
  process.stdout.write(`| ${name.slice(0, 80)} | ${row.count} | ${(row.size / 1024).toFixed(0)} |\n`);
}
