import { rssBytes } from './process-stats.ts';
import { openSseStreams } from './sse-streams.ts';
import type { Target } from './targets/target.ts';

/**
 * Idle SSE streams held through one target: its RSS at rest (`idle`, a freshly started target), then `count`
 * streams opened (`GET` on the stream-holding backend's route) and held 1 s, RSS sampled every 100 ms from `/proc`
 * (all the target's processes); `peak` is the highest sample.
 */
export interface StreamFigures {
  target: string;
  opened: number;
  failed: number;
  idleRss: number;
  peakRss: number;
}

/** Asks the process for a heap snapshot (`--heapsnapshot-signal`) and gives it time to write one under load. */
async function heapSnapshotOf(pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  process.kill(pid, 'SIGUSR2');
  await new Promise((resolve) => setTimeout(resolve, 15_000));
}

export async function measureStreams(target: Target, count: number): Promise<StreamFigures> {
  const idleRss = rssBytes(target.pids());
  let peakRss = idleRss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(target.pids()))), 100);
  const open = await openSseStreams(target.url('hold'), { ...target.headers('hold') }, count, 120_000);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  clearInterval(sampler);
  if (process.env.BENCH_HEAP_SNAPSHOT && target.name === 'gatehouse') await heapSnapshotOf(target.pids()[0]);
  peakRss = Math.max(peakRss, rssBytes(target.pids()));
  open.close();
  // Let the target notice the closed sockets before the next target's streams start.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  return { target: target.name, opened: open.opened, failed: open.failed, idleRss, peakRss };
}
