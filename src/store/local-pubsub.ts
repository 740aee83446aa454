import type { Unsubscribe } from './store.ts';

/**
 * Publish/subscribe inside one process, for the SQLite store. SQLite is the single-node backend, so there is no
 * other replica to tell; every subscriber of this store instance is all there is. Messages are delivered on a later
 * tick, like Redis delivers them, so no caller comes to rely on a synchronous callback.
 */
export class LocalPubSub {
  readonly #handlers = new Map<string, Set<(message: string) => void>>();
  readonly #onHandlerError: (error: unknown, channel: string) => void;

  /** A subscriber that throws must not take the process down or starve the others; its error goes here. */
  constructor(onHandlerError: (error: unknown, channel: string) => void) {
    this.#onHandlerError = onHandlerError;
  }

  publish(channel: string, message: string): void {
    const handlers = this.#handlers.get(channel);
    if (!handlers) return;
    for (const handler of handlers) {
      setImmediate(() => {
        try {
          handler(message);
        } catch (error) {
          this.#onHandlerError(error, channel);
        }
      });
    }
  }

  subscribe(channel: string, onMessage: (message: string) => void): Unsubscribe {
    // Wrap so the same function subscribed twice gets two independent subscriptions.
    const handler = (message: string): void => onMessage(message);
    let handlers = this.#handlers.get(channel);
    if (!handlers) {
      handlers = new Set();
      this.#handlers.set(channel, handlers);
    }
    handlers.add(handler);
    return async () => {
      handlers.delete(handler);
      if (handlers.size === 0) this.#handlers.delete(channel);
    };
  }

  clear(): void {
    this.#handlers.clear();
  }
}
