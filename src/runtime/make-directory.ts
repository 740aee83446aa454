import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * `mkdir -p`, one level at a time. Node's own `mkdirSync(path, { recursive: true })` never returns where a directory
 * refuses new entries with ENOENT although its parent exists (`/proc/nope`): it spun at 100 % CPU, so a store path
 * under such a directory hung `gatehouse start` and `doctor` with no output. Here that is the error it is.
 * `mode`: of the directories it creates (the umask still applies).
 */
export function makeDirectory(path: string, mode?: number): void {
  const missing: string[] = [];
  let current = path;
  while (!exists(current)) {
    missing.push(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const directory of missing.reverse()) {
    try {
      mkdirSync(directory, mode);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
