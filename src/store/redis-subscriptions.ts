import type { ConnectionOptions } from 'node:tls';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ChannelHandlers, type MessageHandler } from './channel-handlers.ts';
import { connectRedis, type RedisConnection } from './redis-connection.ts';
import type { Unsubscribe } from './store.ts';

/**
 * Pub/sub for the Redis store. A connection in subscriber mode cannot run other commands, so subscriptions get their
 * own connection, opened on first use. ioredis re-subscribes after a reconnect; a message published while this
 * replica was disconnected is lost, which the Store contract allows (best effort, at most once).
 */
export class RedisSubscriptions {
  readonly #url: string;
  readonly #channelPrefix: string;
  readonly #logger: Logger | undefined;
  readonly #tls: ConnectionOptions | undefined;
  readonly #handlers: ChannelHandlers;
  #connecting: Promise<RedisConnection> | undefined;
  #closed = false;

  constructor(url: string, channelPrefix: string, logger: Logger | undefined, tls: ConnectionOptions | undefined) {
    this.#url = url;
    this.#tls = tls;
    this.#channelPrefix = channelPrefix;
    this.#logger = logger;
    this.#handlers = new ChannelHandlers((error, channel) => logger?.error({ err: error, channel }, 'store subscriber failed'));
  }

  async subscribe(channel: string, onMessage: MessageHandler): Promise<Unsubscribe> {
    const { redis, describeFailure } = await this.#connection();
    const fullChannel = this.#channelPrefix + channel;
    const subscription = this.#handlers.add(fullChannel, onMessage);
    if (subscription.first) {
      try {
        await redis.subscribe(fullChannel);
      } catch (error) {
        subscription.remove();
        throw describeFailure(error);
      }
    }
    return async () => {
      if (!subscription.remove()) return;
      // If Redis is down the subscription dies with the connection anyway; nothing to report.
      await redis.unsubscribe(fullChannel).catch(() => {});
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#handlers.clear();
    const connecting = this.#connecting;
    this.#connecting = undefined;
    if (!connecting) return;
    const { redis } = await connecting.catch(() => ({ redis: undefined }));
    if (redis && redis.status !== 'end') await redis.quit().catch(() => redis.disconnect());
  }

  #connection(): Promise<RedisConnection> {
    if (this.#closed) return Promise.reject(new Error('the Redis store is closed'));
    if (!this.#connecting) {
      this.#connecting = connectRedis({ url: this.#url, logger: this.#logger, role: 'subscriber', tls: this.#tls }).then((connection) => {
        this.#listen(connection.redis);
        return connection;
      });
      // A failed first connect must not poison later attempts: forget it so the next subscribe tries again.
      this.#connecting.catch(() => {
        this.#connecting = undefined;
      });
    }
    return this.#connecting;
  }

  #listen(redis: Redis): void {
    redis.on('message', (channel: string, message: string) => this.#handlers.deliver(channel, message));
  }
}
