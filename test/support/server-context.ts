import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { configSchema, type GatehouseConfig } from '../../src/config/schema.ts';
import type { Keyring } from '../../src/keys/keyring.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import type { GatehouseContext } from '../../src/context/gatehouse-context.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { createLogger } from '../../src/server/logger.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';

/**
 * A GatehouseContext for server-skeleton tests: a fake store whose health can be switched, a keyring that refuses
 * to be used (the skeleton must not need one), and a logger writing into memory so tests can read every log line.
 */

export interface FakeStore extends Store {
  reachable: boolean;
  closed: boolean;
}

const notInFake = (method: string) => () => {
  throw new Error(`FakeStore.${method} is not implemented: server tests should not need it`);
};

export function createFakeStore(): FakeStore {
  return {
    kind: 'sqlite',
    reachable: true,
    closed: false,
    async ping() {
      if (!this.reachable) throw new StoreUnavailableError('fake store is down');
    },
    async close() {
      this.closed = true;
    },
    get: notInFake('get'),
    set: notInFake('set'),
    setMany: notInFake('setMany'),
    setIfAbsent: notInFake('setIfAbsent'),
    delete: notInFake('delete'),
    consume: notInFake('consume'),
    findByIndex: notInFake('findByIndex'),
    addIndexes: notInFake('addIndexes'),
    deleteByIndex: notInFake('deleteByIndex'),
    list: notInFake('list'),
    increment: notInFake('increment'),
    acquireLock: notInFake('acquireLock'),
    publish: notInFake('publish'),
    subscribe: notInFake('subscribe'),
    purgeExpired: notInFake('purgeExpired'),
  };
}

/** Collects everything the logger writes; `text()` is the raw output, `lines()` the parsed JSON lines. */
export class LogCapture extends Writable {
  readonly chunks: string[] = [];
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(chunk.toString());
    callback();
  }
  text(): string {
    return this.chunks.join('');
  }
  lines(): Record<string, unknown>[] {
    return this.text()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

/** A logger writing into a LogCapture, so a test can read every line it wrote. */
export function captureLogs(level: 'info' | 'debug' = 'info'): { logger: Logger; logs: LogCapture } {
  const logs = new LogCapture();
  return { logger: createLogger({ level, destination: logs }), logs };
}

export type TestContextParts = Omit<GatehouseContext, 'random' | 'fetch'> & Partial<Pick<GatehouseContext, 'random' | 'fetch'>>;

/** The one context builder of the test harnesses: real randomness and fetch unless a test passes its own. */
export function testContext(parts: TestContextParts): GatehouseContext {
  return { random: cryptoRandom, fetch: globalThis.fetch, ...parts };
}

const unusedKeyring: Keyring = {
  currentSigningKey: notInFake('keyring.currentSigningKey'),
  signingKeys: notInFake('keyring.signingKeys'),
  publicJwks: notInFake('keyring.publicJwks'),
  privateJwks: notInFake('keyring.privateJwks'),
  seal: notInFake('keyring.seal'),
  unseal: notInFake('keyring.unseal'),
};

export interface ServerTestContext {
  ctx: GatehouseContext;
  store: FakeStore;
  logs: LogCapture;
}

export function createServerTestContext(
  overrides: { server?: Partial<GatehouseConfig['server']>; publicUrl?: string } = {},
): ServerTestContext {
  const parsed = configSchema.parse({});
  const config: GatehouseConfig = { ...parsed, server: { ...parsed.server, ...overrides.server } };
  const store = createFakeStore();
  const { logger, logs } = captureLogs('debug');
  const ctx = testContext({
    config,
    publicUrl: overrides.publicUrl ?? 'http://127.0.0.1:8080',
    store,
    keyring: unusedKeyring,
    clock: new ManualClock(),
    logger,
    fetch: () => Promise.reject(new Error('server tests make no outbound requests')),
  });
  return { ctx, store, logs };
}
