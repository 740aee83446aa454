import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { configSchema, type GatehouseConfig } from '../../src/config/schema.ts';
import type { KeySetFile } from '../../src/keys/key-set.ts';

/** A logger whose output the test can read back, to prove nothing secret was written. */
export function capturingLogger(): { logger: Logger; output: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { logger: pino({ level: 'trace' }, stream), output: () => lines.join('') };
}

/** The private members of every key in a set (`d` of signing JWKs, `k` of sealing keys). */
export function keyMaterial(keySet: KeySetFile): string[] {
  return [...keySet.signingKeys.map((key) => String(key.jwk.d)), ...keySet.sealingKeys.map((key) => key.k)];
}

export function testConfig(overrides: Record<string, unknown> = {}): GatehouseConfig {
  return configSchema.parse(overrides);
}

/** Resolves on the next reload a keyring reports through its `onReload` hook. */
export function reloadSignal(): { onReload: (error?: unknown) => void; next: () => Promise<unknown> } {
  let waiters: ((error: unknown) => void)[] = [];
  return {
    onReload: (error) => {
      const current = waiters;
      waiters = [];
      for (const resolve of current) resolve(error);
    },
    next: () => new Promise((resolve) => waiters.push(resolve)),
  };
}
