import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time and resident memory of a target, read from `/proc` for every process of it (nginx: the master and its
 * workers), so every target is measured the same way and from outside. CPU is `utime + stime` of
 * `/proc/<pid>/stat` (all threads), in clock ticks of 10 ms (`CLK_TCK` is 100 on Linux).
 */
const MICROS_PER_TICK = 10_000;

/** Fields after the command name, which is in parentheses and may itself hold spaces or parentheses. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime (fields 14 and 15 of proc(5); index 11 and 12 after the command name), µs. */
export function cpuMicros(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const fields = statFields(pid);
    if (fields) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks * MICROS_PER_TICK;
}

/** Sum of VmRSS, bytes. */
export function rssBytes(pids: readonly number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kb += Number(match?.[1] ?? 0);
    } catch {
      // the process ended: it holds no memory
    }
  }
  return kb * 1024;
}

/** Direct children of `pid` (ppid is field 4 of proc(5), index 1 after the command name). */
export function childPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((candidate) => statFields(candidate)?.[1] === String(pid));
}

/** The soft limit on open files of this process (children inherit it): each proxied stream costs a target two. */
export function openFilesLimit(): number {
  const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match ? Number(match[1]) : Number.POSITIVE_INFINITY;
}
