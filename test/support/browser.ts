import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** The system Chromium the browser tests drive (playwright-core downloads no browser of its own). */
const CHROMIUM = '/usr/bin/chromium';

/** The `skip` option of a browser suite: skipped, with the reason, where Chromium is not installed. */
export const skipWithoutChromium = existsSync(CHROMIUM) ? false : 'chromium is not installed';

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
