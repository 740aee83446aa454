export type MessageHandler = (message: string) => void;

export interface ChannelSubscription {
  /** Whether this is the channel's only subscriber (the Redis store then subscribes its connection). */
  first: boolean;
  /** Removes the subscriber; true when the channel has none left (the Redis store then unsubscribes). */
  remove(): boolean;
}

/** The subscribers of each channel, for both stores' publish/subscribe. */
export class ChannelHandlers {
  readonly #byChannel = new Map<string, Set<MessageHandler>>();
  readonly #onHandlerError: (error: unknown, channel: string) => void;

  /** A subscriber that throws must not take the process down or starve the others; its error goes here. */
  constructor(onHandlerError: (error: unknown, channel: string) => void) {
    this.#onHandlerError = onHandlerError;
  }

  add(channel: string, onMessage: MessageHandler): ChannelSubscription {
    // Wrap so the same function subscribed twice gets two independent subscriptions.
    const handler: MessageHandler = (message) => onMessage(message);
    let handlers = this.#byChannel.get(channel);
    if (!handlers) {
      handlers = new Set();
      this.#byChannel.set(channel, handlers);
    }
    handlers.add(handler);
    return {
      first: handlers.size === 1,
      remove: () => {
        const current = this.#byChannel.get(channel);
        if (!current?.delete(handler) || current.size > 0) return false;
        this.#byChannel.delete(channel);
        return true;
      },
    };
  }

  /** Hands the message to every subscriber of the channel, each call through `schedule` (default: now). */
  deliver(channel: string, message: string, schedule: (call: () => void) => void = (call) => call()): void {
    for (const handler of this.#byChannel.get(channel) ?? []) {
      schedule(() => {
        try {
          handler(message);
        } catch (error) {
          this.#onHandlerError(error, channel);
        }
      });
    }
  }

  clear(): void {
    this.#byChannel.clear();
  }
}
