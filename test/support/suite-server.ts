import { after, before } from 'node:test';

/**
 * Starts something closable (a test server, a store) before the enclosing `describe` block's tests and closes it
 * after them. The returned object stands for the started one: reading a property before the block starts is a test
 * bug and throws, so a suite never runs against a half-made fixture. One place for the before/after pair the suites
 * would otherwise each spell out.
 */
export function startedForSuite<T extends object & { close(): Promise<void> | void }>(start: () => Promise<T> | T): T {
  let started: T | undefined;
  before(async () => {
    started = await start();
  });
  after(async () => {
    await started?.close();
  });
  return new Proxy({} as T, {
    get(_target, key) {
      if (started === undefined) throw new Error(`suite fixture read (${String(key)}) before the suite started`);
      const value: unknown = Reflect.get(started, key, started);
      return typeof value === 'function' ? value.bind(started) : value;
    },
  });
}
