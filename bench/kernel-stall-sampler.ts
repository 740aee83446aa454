import { readFileSync } from 'node:fs';

/**
 * The child process of `startDaemonSampler` (kernel-stalls.ts): polls the run time of the kernel threads named by
 * their pids every millisecond and, asked to stop, answers the stretches in which each ran, on CLOCK_MONOTONIC. A
 * stretch starts at the last poll that saw the thread idle and ends at the first poll that sees it idle again;
 * polls that see it run back to back make one stretch.
 */
const pids = process.argv.slice(2);
const runTimeNs = (pid: string): number => {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
};
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const last = pids.map(runTimeNs);
/** Per thread, the stretch still running at the previous poll. */
const open: Array<{ startMs: number; endMs: number; ranMs: number } | undefined> = pids.map(() => undefined);
const runs: Array<{ startMs: number; endMs: number; ranMs: number }> = [];
let previousPoll = nowMs();

const timer = setInterval(() => {
  const now = nowMs();
  pids.forEach((pid, index) => {
    const ran = runTimeNs(pid);
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
}, 1);

process.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  process.send!(runs, () => process.disconnect());
});
// The parent gone without a stop (the bench killed): nothing to report to.
process.on('disconnect', () => clearInterval(timer));
process.send!('sampling');
