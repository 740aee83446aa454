import { readFileSync } from 'node:fs';

/**
 * `node bench/heap-summary.ts <file.heapsnapshot> [top]`: the heap by what holds it — self size and count per
 * constructor (or node type for strings, code and arrays), largest first.
 *
 * `node bench/heap-summary.ts <fewer.heapsnapshot> <more.heapsnapshot> <streams in fewer> <streams in more> [top]`:
 * what one idle stream holds — the difference between two snapshots of the same target with different numbers of
 * streams open, per stream: bytes and objects per row, and the total. Taken with `BENCH_HEAP_SNAPSHOT=<dir>
 * BENCH_PARTS=streams BENCH_TARGETS=gatehouse BENCH_STREAMS=<n> npm run bench` at two counts (e.g. 1,000 and 3,000),
 * the start-up heap and whatever a first stream warms up cancel out; a row of 1.00 objects per stream is something
 * each stream keeps alive.
 */
interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  strings: string[];
}

interface Row {
  count: number;
  size: number;
}

function summarise(file: string): { rows: Map<string, Row>; total: number } {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((field) => fields.indexOf(field));
  const rows = new Map<string, Row>();
  let total = 0;
  for (let index = 0; index < snapshot.nodes.length; index += fields.length) {
    const type = types[snapshot.nodes[index + typeAt!]!] ?? '?';
    const name = type === 'object' || type === 'closure' || type === 'native' ? `${type} ${snapshot.strings[snapshot.nodes[index + nameAt!]!]}` : `(${type})`;
    const size = snapshot.nodes[index + sizeAt!]!;
    const row = rows.get(name) ?? { count: 0, size: 0 };
    row.count += 1;
    row.size += size;
    total += size;
    rows.set(name, row);
  }
  return { rows, total };
}

const args = process.argv.slice(2);
if (args.length >= 4) {
  const [fewerFile, moreFile, fewerCount, moreCount, topArg] = args as [string, string, string, string, string?];
  const streams = Number(moreCount) - Number(fewerCount);
  if (!(streams > 0)) throw new Error('the second snapshot must have more streams open than the first');
  const fewer = summarise(fewerFile);
  const more = summarise(moreFile);
  const perStream = [...more.rows].map(([name, row]) => {
    const before = fewer.rows.get(name) ?? { count: 0, size: 0 };
    return { name, count: (row.count - before.count) / streams, size: (row.size - before.size) / streams };
  });
  process.stdout.write(`Heap per stream: ${((more.total - fewer.total) / streams).toFixed(0)} bytes (${streams} streams apart)\n\n`);
  process.stdout.write('| what | objects per stream | bytes per stream |\n|---|---:|---:|\n');
  for (const row of perStream.sort((a, b) => b.size - a.size).slice(0, Number(topArg ?? 40))) {
    process.stdout.write(`| ${row.name.slice(0, 80)} | ${row.count.toFixed(2)} | ${row.size.toFixed(0)} |\n`);
  }
} else {
  const [file, topArg] = args;
  if (!file) throw new Error('usage: node bench/heap-summary.ts <file.heapsnapshot> [top], or <fewer> <more> <count fewer> <count more> [top]');
  const { rows } = summarise(file);
  process.stdout.write('| what | count | self size (KB) |\n|---|---:|---:|\n');
  for (const [name, row] of [...rows].sort((a, b) => b[1].size - a[1].size).slice(0, Number(topArg ?? 40))) {
    process.stdout.write(`| ${name.slice(0, 80)} | ${row.count} | ${(row.size / 1024).toFixed(0)} |\n`);
  }
}
