import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * What a desktop client does to "open the browser", captured: a `BROWSER` program (honoured by xdg-open, which the
 * `open` package these CLIs use runs on Linux) that appends the URL to a file instead of launching anything. The test
 * reads each URL and drives its own Chromium there, so the client's real opener code path runs.
 */
export interface BrowserOpener {
  /** Environment for the client process. */
  env: Record<string, string>;
  /** The next URL the client opened (waits for it). */
  next(timeoutMs?: number): Promise<URL>;
  /** How many URLs the client opened so far. */
  opened(): Promise<number>;
}

export async function createBrowserOpener(dir: string): Promise<BrowserOpener> {
  const log = join(dir, 'opened-urls.txt');
  const script = join(dir, 'browser.sh');
  await writeFile(log, '');
  await writeFile(script, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${log}'\n`);
  await chmod(script, 0o755);
  const lines = async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  let taken = 0;
  return {
    env: { BROWSER: script },
    async next(timeoutMs = 30_000) {
      for (let waited = 0; waited < timeoutMs; waited += 100) {
        const url = (await lines())[taken];
        if (url) {
          taken += 1;
          return new URL(url);
        }
        await sleep(100);
      }
      throw new Error(`the client opened no browser within ${timeoutMs} ms`);
    },
    opened: async () => (await lines()).length,
  };
}
