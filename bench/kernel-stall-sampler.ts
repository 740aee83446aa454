import { openSync, readSync } from 'node:fs';

/**
 * The child process of `startDaemonSampler` (kernel-stalls.ts): polls the run time of the kernel threads named by
 * their pids every millisecond and, asked to stop, answers the stretches in which each ran, on CLOCK_MONOTONIC. A
 * stretch starts at the last poll that saw the thread idle and ends at the last poll that saw it run; polls that
 * see it run back to back make one stretch.
 */
const pids = process.argv.slice(2);
// Each file stays open and is read again from its start: one syscall a poll instead of an open, a read and a close.
const files = pids.map((pid) => {
  try {
    return openSync(`/proc/${pid}/schedstat`, 'r');
  } catch {
    return undefined;
  }
});
const buffer = Buffer.alloc(128);
const runTimeNs = (index: number): number => {
  const fd = files[index];
  if (fd === undefined) return Number.NaN;
  try {
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    return Number(buffer.toString('latin1', 0, length).split(' ')[0]);
  } catch {
    return Number.NaN;
  }
};
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const last = pids.map((_, index) => runTimeNs(index));
/** Per thread, the stretch still running at the previous poll. */
const open: Array<{ startMs: number; endMs: number; ranMs: number } | undefined> = pids.map(() => undefined);
const runs: Array<{ startMs: number; endMs: number; ranMs: number }> = [];
let previousPoll = nowMs();

function poll(): void {
  const now = nowMs();
  pids.forEach((_, index) => {
    const ran = runTimeNs(index);
    const previous = last[index]!;
    last[index] = ran;
    const current = open[index];
    if (Number.isFinite(ran) && Number.isFinite(previous) && ran > previous) {
      const ranMs = (ran - previous) / 1e6;
      if (current) {
        current.endMs = now;
        current.ranMs += ranMs;
      } else {
        const run = { startMs: previousPoll, endMs: now, ranMs };
        open[index] = run;
        runs.push(run);
      }
    } else {
      open[index] = undefined;
    }
  });
  previousPoll = now;
}

// ≈ 4 % of one core here (each wake-up of a 1 ms timer costs ≈ 40 µs on this virtual machine), only while the
// latency runs, whose load leaves most of both cores idle, are measured.
const timer = setInterval(poll, 1);

process.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  process.send!(runs, () => process.disconnect());
});
// The parent gone without a stop (the bench killed): nothing to report to.
process.on('disconnect', () => clearInterval(timer));
process.send!('sampling');
