import type { ConnectionOptions } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { StoreUnavailableError } from './store.ts';

/**
 * Connection settings chosen so an unreachable Redis is a fast, clear error rather than a hang: a short connect
 * timeout, no offline queue (commands fail at once while disconnected instead of piling up), nothing resent after a
 * reconnect, one retry per command,
 * and a bounded command timeout for a server that accepts connections but stops answering. The client keeps
 * reconnecting in the background, so the store recovers by itself when Redis comes back.
 */
const connectionOptions: RedisOptions = {
  lazyConnect: true,
  connectTimeout: 2000,
  commandTimeout: 5000,
  enableOfflineQueue: false,
  // A command sent before the connection broke has been answered 503 already (it timed out, or the connection
  // closed under it): sent again on reconnect, it changed the store after the client was told it had not — a
  // revocation landing late, a code consumed that the client's retry then found consumed.
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 1,
  retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
};

/** `host:port` of a Redis URL, for messages and logs; the URL itself carries the password and is never shown. */
export function redisEndpoint(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '6379'}`;
  } catch {
    throw new StoreUnavailableError('store.redisUrl is not a valid redis:// or rediss:// URL');
  }
}

export interface RedisConnection {
  redis: Redis;
  endpoint: string;
  /** Turns a connection-level failure into StoreUnavailableError naming the endpoint; other errors pass through. */
  describeFailure(error: unknown): unknown;
}

export interface RedisConnectOptions {
  url: string;
  logger: Logger | undefined;
  /** Names the connection in logs: `commands` or `subscriber`. */
  role: string;
  /** Extra TLS settings for `rediss://` (e.g. a private CA); public CAs need nothing. */
  tls?: ConnectionOptions | undefined;
}

/** Connects and waits until Redis answers, or throws a one-line StoreUnavailableError. */
export async function connectRedis(options: RedisConnectOptions): Promise<RedisConnection> {
  const { url, logger, role, tls } = options;
  const endpoint = redisEndpoint(url);
  const protocol = new URL(url).protocol;
  if (protocol !== 'redis:' && protocol !== 'rediss:') {
    throw new StoreUnavailableError(`store.redisUrl must start with redis:// or rediss:// (got ${protocol}//…)`);
  }
  // ioredis turns `rediss://` into TLS by itself; extra settings only make sense there.
  const redis = new Redis(url, protocol === 'rediss:' && tls ? { ...connectionOptions, tls } : connectionOptions);
  let lastError = '';
  let up = false;
  redis.on('error', (error: Error) => {
    lastError = error.message;
    if (up) logger?.warn({ endpoint, role, reason: error.message }, 'Redis connection lost; reconnecting');
    up = false;
  });
  redis.on('ready', () => {
    if (lastError) logger?.info({ endpoint, role }, 'Redis connection ready');
    up = true;
  });

  const describeFailure = (error: unknown): unknown => {
    if (error instanceof StoreUnavailableError) return error;
    withoutCommandArguments(error);
    if (!isConnectionFailure(error)) return error;
    const reason = error instanceof Error ? error.message : String(error);
    return new StoreUnavailableError(`Redis at ${endpoint} is unavailable: ${reason}`, { cause: error });
  };

  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    const reason = lastError || (error instanceof Error ? error.message : String(error));
    const hint = /WRONGPASS|NOAUTH/.test(reason) ? ' (check the password in store.redisUrl)' : '';
    throw new StoreUnavailableError(`Redis at ${endpoint} is unreachable: ${reason}${hint}`, { cause: error });
  }
  return { redis, endpoint, describeFailure };
}

/**
 * Network errors, timeouts, "not connected" and the replies a Redis gives when it cannot serve (loading, no auth,
 * read-only replica, out of memory under `noeviction`, a failed snapshot that stops writes, a cluster or replica
 * set not ready, the client limit) mean "try later". Script and type errors are bugs and must surface as they are.
 * An OOM was a 500 from every endpoint, and a revocation half done (docs/operations.md promises 503).
 */
const UNAVAILABLE_REPLY = /^(NOAUTH|WRONGPASS|LOADING|READONLY|MASTERDOWN|BUSY|OOM|MISCONF|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|ERR max number of clients reached)/;

function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof TypeError || error instanceof SyntaxError || error instanceof RangeError) return false;
  if (error.name !== 'ReplyError') return true;
  return UNAVAILABLE_REPLY.test(error.message);
}

/**
 * ioredis puts the failed command on its error, arguments included: for a write, the record being stored (an
 * account's e-mail, a sealed token). Logged with the error, the log held store contents. The command's name stays.
 */
function withoutCommandArguments(error: unknown): void {
  const command = (error as { command?: { name?: unknown; args?: unknown } } | null)?.command;
  if (typeof command === 'object' && command !== null && 'args' in command) {
    (error as { command: unknown }).command = { name: command.name };
  }
}
