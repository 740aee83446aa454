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
  // Closing waits this long for the socket's close, which never comes for a socket Redis already dropped: at the
  // default (2 s), a gateway stopping while Redis was down lingered that long after it said "stopped". QUIT has
  // been answered (or failed) by then: nothing is left to wait for.
  disconnectTimeout: 100,
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
  /** Which connection commands go out on now: a number that grows each time a connection becomes ready. */
  readonly generation: number;
  /**
   * Turns a connection-level failure into StoreUnavailableError naming the endpoint; other errors pass through.
   * `sentOn`: the `generation` the failed command was sent on, when the caller knows it.
   */
  describeFailure(error: unknown, sentOn?: number): unknown;
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
  // ioredis turns `rediss://` into TLS by itself; extra settings only make sense there. It decodes the URL's
  // credentials itself, and a stray `%` in a password threw a URIError that start-up reported as an internal error.
  let redis: Redis;
  try {
    redis = new Redis(url, protocol === 'rediss:' && tls ? { ...connectionOptions, tls } : connectionOptions);
  } catch {
    throw new StoreUnavailableError('store.redisUrl cannot be used: percent-encode any % in its user name or password (as %25)');
  }
  let lastError = '';
  let up = false;
  redis.on('error', (error: Error) => {
    lastError = error.message;
    if (up) logger?.warn({ endpoint, role, reason: error.message }, 'Redis connection lost; reconnecting');
    up = false;
  });
  /** The connection this failure's reconnect dropped, until a new one is ready: one drop for all its commands. */
  let dropping = false;
  let generation = 0;
  redis.on('ready', () => {
    if (lastError) logger?.info({ endpoint, role }, 'Redis connection ready');
    up = true;
    dropping = false;
    generation += 1;
  });

  const describeFailure = (error: unknown, sentOn?: number): unknown => {
    if (error instanceof StoreUnavailableError) return error;
    withoutCommandArguments(error);
    if (!isConnectionFailure(error)) return error;
    // A command that timed out stays at the head of the client's queue of commands awaiting a reply. A late reply
    // still pairs with it; a reply that never comes (a middlebox that dropped the bytes, the connection left open)
    // makes every later reply pair with the command before it — timeouts, or another command's answer — until the
    // process restarts. No reply for `commandTimeout` is taken for that: the connection is dropped and made again,
    // which empties the queue (ioredis reconnects on its own). A Redis merely that slow pays a reconnect, and the
    // commands in flight with it fail as unavailable, as they would have timed out. Once per connection: a dozen
    // commands timing out together drop it once. (Its status stays `ready` until the socket has closed, which against
    // a frozen peer takes a while: each of 60 commands timing out then dropped it again, 60 warnings and a listener
    // per drop on the socket, past Node's MaxListeners warning.) Only for a command sent on the connection in use: one
    // sent on a connection dropped before (ioredis keeps such commands unanswered, their timers running, when it does
    // not send them again) times out after the next connection is ready, and dropped that healthy one — a second
    // outage a second after a frozen Redis came back.
    const current = sentOn === undefined || sentOn === generation;
    if (error instanceof Error && error.message === COMMAND_TIMED_OUT && redis.status === 'ready' && !dropping && current) {
      dropping = true;
      logger?.warn({ endpoint, role }, 'Redis command timed out; reconnecting so later replies are not taken for earlier commands');
      redis.disconnect(true);
    }
    // A discarded MULTI says only that it was discarded; why (OOM) is in the errors of the commands queued in it.
    const queued = (error as { previousErrors?: unknown }).previousErrors;
    const cause = Array.isArray(queued) && queued[0] instanceof Error ? queued[0] : error;
    const reason = cause instanceof Error ? cause.message : String(cause);
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
  return {
    redis,
    endpoint,
    get generation() {
      return generation;
    },
    describeFailure,
  };
}

/**
 * Network errors, timeouts, "not connected" and the replies a Redis gives when it cannot serve (loading, no auth,
 * read-only replica, out of memory under `noeviction`, a failed snapshot that stops writes, a cluster or replica
 * set not ready, the client limit) mean "try later". Script and type errors are bugs and must surface as they are.
 * An OOM was a 500 from every endpoint, and a revocation half done (docs/operations.md promises 503).
 */
const UNAVAILABLE_REPLY = /^(NOAUTH|WRONGPASS|LOADING|READONLY|MASTERDOWN|BUSY|OOM|MISCONF|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|ERR max number of clients reached)/;

/** ioredis's message for a command that got no reply within `commandTimeout`. */
const COMMAND_TIMED_OUT = 'Command timed out';

function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof TypeError || error instanceof SyntaxError || error instanceof RangeError) return false;
  if (error.name !== 'ReplyError') return true;
  // A MULTI (a batch of audit records, src/store/redis-scripts.ts runScriptBatch) is discarded whole when a command
  // in it was refused as it was queued: under OOM every one is. That is the store being unable to write, to retry —
  // not a refusal of the batch, which was dropped, audit records and all.
  if (error.message.startsWith('EXECABORT')) {
    const previous = (error as { previousErrors?: unknown }).previousErrors;
    return Array.isArray(previous) && previous.length > 0 && previous.every((entry) => entry instanceof Error && UNAVAILABLE_REPLY.test(entry.message));
  }
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
  // A discarded MULTI carries the errors of the commands queued in it, each with its own arguments (whole records).
  const previous = (error as { previousErrors?: unknown } | null)?.previousErrors;
  if (Array.isArray(previous)) for (const entry of previous) if (entry !== error) withoutCommandArguments(entry);
}
