import type { Logger } from 'pino';
import type { GatehouseConfig } from '../config/schema.ts';
import type { Keyring } from '../keys/keyring.ts';
import type { Store } from '../store/store.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';

/**
 * Everything with a side effect, handed to each part at construction. No part reaches for a module-level singleton,
 * so tests can swap any of these (a manual clock, a second replica's store, a capturing logger).
 */
export interface GatehouseContext {
  config: GatehouseConfig;
  /** The public base URL (issuer) with no trailing slash, e.g. `https://gatehouse.example.com`. */
  publicUrl: string;
  store: Store;
  keyring: Keyring;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** Outbound HTTP (upstream IdP, CIMD documents, downstream APIs); tests pass one that reaches local stand-ins. */
  fetch: typeof globalThis.fetch;
}
