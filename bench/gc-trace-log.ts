import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * V8's `--trace-gc` on a production-started Gatehouse, for bench/gc-trace.ts and bench/idle-gap.ts. NODE_OPTIONS
 * refuses the flag, so a wrapper beside the package build's CLI entry turns it on at run time and then starts the
 * CLI; the trace goes to Gatehouse's stdout, which the bench writes to its log file.
 */

/** Writes the wrapper into the compiled build under `dir` and returns its path; `extra` is JavaScript run before the CLI. */
export async function writeTracedEntry(dir: string, extra = ''): Promise<string> {
  const traced = join(dir, 'js', 'dist', 'src', 'cli', 'traced-main.js');
  await writeFile(traced, `import { setFlagsFromString } from 'node:v8';\nsetFlagsFromString('--trace-gc');\n${extra}await (await import('./main.js')).main();\n`);
  return traced;
}

export interface CollectionTotals {
  count: number;
  /** Main-thread pause, with a mark-compact's incremental marking steps. */
  ms: number;
}

/** The collections in a stretch of trace, by kind (a memory reducer's `Mark-Compact (reduce)` apart). */
export function collectionsIn(trace: string): Map<string, CollectionTotals> {
  const kinds = new Map<string, CollectionTotals>();
  for (const line of trace.split('\n')) {
    const match = / ms: (Scavenge|Mark-Compact(?: \(reduce\))?|Minor Mark-Sweep).*? ([\d.]+) \/ [\d.]+ ms(?:\s+\(\+ ([\d.]+) ms in)?/.exec(line);
    if (!match) continue;
    const kind = kinds.get(match[1]!) ?? { count: 0, ms: 0 };
    kind.count++;
    kind.ms += Number(match[2]) + Number(match[3] ?? 0);
    kinds.set(match[1]!, kind);
  }
  return kinds;
}
