import { openSync, readSync } from 'node:fs';
import { monotonicMs, type RunTimeGrowth } from './kernel-stalls.ts';

/**
 * The child process of `startDaemonSampler` (kernel-stalls.ts): polls the run time of the kernel threads named by
 * their pids every millisecond and, asked to stop, answers every poll that saw one grow. The parent joins them into
 * stretches (`stretchesOf`): a thread's run time moves only at scheduler ticks and switches, so this process cannot
 * tell on its own where a stretch ends.
 */
const pids = process.argv.slice(2);
// Each file stays open and is read again from its start: one syscall a poll instead of an open, a read and a close.
const schedstatFds = pids.map((pid) => {
  try {
    return openSync(`/proc/${pid}/schedstat`, 'r');
  } catch {
    return undefined;
  }
});
const buffer = Buffer.alloc(128);

/** The thread's run time so far (ns): the first field of its schedstat. NaN if it cannot be read. */
function runTimeNs(index: number): number {
  const fd = schedstatFds[index];
  if (fd === undefined) return Number.NaN;
  try {
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    return Number(buffer.toString('latin1', 0, length).split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

const lastRunTimeNs = pids.map((_, index) => runTimeNs(index));
const growths: RunTimeGrowth[] = [];
let previousMs = monotonicMs();

function poll(): void {
  const atMs = monotonicMs();
  pids.forEach((_, index) => {
    const ran = runTimeNs(index);
    const before = lastRunTimeNs[index]!;
    lastRunTimeNs[index] = ran;
    if (ran > before) growths.push({ atMs, previousMs, ranMs: (ran - before) / 1e6 });
  });
  previousMs = atMs;
}

// ≈ 4 % of one core here (each wake-up of a 1 ms timer costs ≈ 40 µs on this virtual machine), only while the
// latency runs, whose load leaves most of both cores idle, are measured.
const timer = setInterval(poll, 1);

process.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  process.send!(growths, () => process.disconnect());
});
// The parent gone without a stop (the bench killed): nothing to report to.
process.on('disconnect', () => clearInterval(timer));
process.send!('sampling');
