import { mock } from 'node:test';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';

/**
 * Runs `action` while every write (`set`, `setIfAbsent`) to `namespace` fails as in a store outage; the other
 * namespaces and every read keep working. The store's methods are restored after, whatever `action` did.
 */
export async function withNamespaceOutage<T>(store: Store, namespace: string, action: () => Promise<T>): Promise<T> {
  const failing = (method: 'set' | 'setIfAbsent') => {
    const real = store[method].bind(store) as (...args: unknown[]) => Promise<unknown>;
    return mock.method(store, method, (name: string, ...rest: unknown[]) => (name === namespace ? Promise.reject(new StoreUnavailableError('the store is unavailable')) : real(name, ...rest)));
  };
  const mocked = [failing('set'), failing('setIfAbsent')];
  try {
    return await action();
  } finally {
    for (const method of mocked) method.mock.restore();
  }
}
