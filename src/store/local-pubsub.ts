import { ChannelHandlers, type MessageHandler } from './channel-handlers.ts';
import type { Unsubscribe } from './store.ts';

/**
 * Publish/subscribe inside one process, for the SQLite store. SQLite is the single-node backend, so there is no
 * other replica to tell; every subscriber of this store instance is all there is. Messages are delivered on a later
 * tick, like Redis delivers them, so no caller comes to rely on a synchronous callback.
 */
export class LocalPubSub {
  readonly #handlers: ChannelHandlers;

  /** A subscriber that throws must not take the process down or starve the others; its error goes here. */
  constructor(onHandlerError: (error: unknown, channel: string) => void) {
    this.#handlers = new ChannelHandlers(onHandlerError);
  }

  publish(channel: string, message: string): void {
    this.#handlers.deliver(channel, message, setImmediate);
  }

  subscribe(channel: string, onMessage: MessageHandler): Unsubscribe {
    const subscription = this.#handlers.add(channel, onMessage);
    return async () => {
      subscription.remove();
    };
  }

  clear(): void {
    this.#handlers.clear();
  }
}
