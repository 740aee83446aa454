import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

/**
 * Every child the bench started, stopped when the bench exits however it exits. SIGTERM, not SIGKILL: a killed
 * nginx master leaves its worker running, a terminated one stops it.
 */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGTERM');
});

export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** The first stdout line of a child that prints one JSON line when it is ready. */
export async function firstLine(child: ChildProcess, what: string, timeoutMs = 30_000): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  const signal = AbortSignal.timeout(timeoutMs);
  const exited = once(child, 'exit', { signal }).then(([code]) => {
    throw new Error(`${what} exited (code ${String(code)}) before it was ready`);
  });
  const [line] = (await Promise.race([once(lines, 'line', { signal }), exited])) as [string];
  lines.close();
  return line;
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

export async function startBackends(): Promise<{ urls: import('./backends/main.ts').BackendUrls; child: ChildProcess }> {
  const child = spawnTracked(process.execPath, [join(import.meta.dirname, 'backends', 'main.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  return { urls: JSON.parse(await firstLine(child, 'the backends')) as import('./backends/main.ts').BackendUrls, child };
}
