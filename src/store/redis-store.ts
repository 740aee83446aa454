import { randomUUID } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Clock } from '../runtime/clock.ts';
import { assertListLimit, assertLockTtl, assertStoreName, parseStoredValue, serializeValue, ttlMilliseconds } from './names.ts';
import { connectRedis, type RedisConnection } from './redis-connection.ts';
import { purgeStaleMembers } from './redis-purge.ts';
import { startPurgeTimer, type PurgeTimer } from './purge-timer.ts';
import { RedisSubscriptions } from './redis-subscriptions.ts';
import { guardStoreHealth } from './store-health.ts';
import {
  addIndexesScript,
  deleteByIndexScript,
  dropStaleMembersScript,
  incrementScript,
  releaseLockScript,
  runScript,
  runScriptBatch,
  setRecordScript,
  takeRecordScript,
} from './redis-scripts.ts';
import { GatehouseError } from '../errors/internal-errors.ts';
import { StoreUnavailableError, UnreadableValue, type IndexRangeOptions, type ListOptions, type ReleaseLock, type SetOptions, type Store, type StoreEntry, type StoreWrite, type Unsubscribe } from './store.ts';

export interface RedisStoreOptions {
  /** `redis://` or `rediss://` (TLS), with the password if the server needs one. Never logged. */
  url: string;
  /** Prefix of every key and channel, so several deployments can share one Redis. */
  keyPrefix: string;
  clock: Clock;
  logger?: Logger;
  /** How often stale list/index members of expired records are cleaned; 0 turns the timer off. */
  purgeIntervalMs?: number;
  /** Extra TLS settings for a `rediss://` URL, e.g. `{ ca }` for a private certificate authority. */
  tls?: ConnectionOptions;
}

interface Envelope<T> {
  v: T;
  i?: Record<string, string>;
  e?: number;
}

/** A record's envelope from its stored text; one that is not JSON, or not an envelope, holds an UnreadableValue. */
function readEnvelope<T>(raw: string): Envelope<T> | { v: UnreadableValue; i?: undefined; e?: undefined } {
  const envelope = parseStoredValue(raw);
  if (typeof envelope !== 'object' || envelope === null || envelope instanceof UnreadableValue || !('v' in envelope)) return { v: new UnreadableValue() };
  return envelope as Envelope<T>;
}

/**
 * The store for replicas: Redis keeps the TTLs (PX), Lua scripts keep a record, its index sets and its namespace's
 * list set consistent, and pub/sub runs on a second connection. Key patterns are in docs/storage.md.
 */
export async function createRedisStore(options: RedisStoreOptions): Promise<Store> {
  const { url, keyPrefix, clock, logger, purgeIntervalMs = 60_000, tls } = options;
  const connection = await connectRedis({ url, logger, role: 'commands', tls });
  const subscriptions = new RedisSubscriptions(url, `${keyPrefix}ch:`, logger, tls);
  return guardStoreHealth(new RedisStore(connection, subscriptions, keyPrefix, clock, logger, purgeIntervalMs), { logger });
}

class RedisStore implements Store {
  readonly kind = 'redis';
  readonly #redis: Redis;
  readonly #connection: RedisConnection;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #subscriptions: RedisSubscriptions;
  readonly #purgeTimer: PurgeTimer;

  constructor(
    connection: RedisConnection,
    subscriptions: RedisSubscriptions,
    prefix: string,
    clock: Clock,
    logger: Logger | undefined,
    purgeIntervalMs: number,
  ) {
    this.#connection = connection;
    this.#redis = connection.redis;
    this.#prefix = prefix;
    this.#clock = clock;
    this.#subscriptions = subscriptions;
    this.#purgeTimer = startPurgeTimer(this, purgeIntervalMs, logger);
  }

  async get<T>(namespace: string, key: string): Promise<T | undefined> {
    assertStoreName('namespace', namespace);
    const raw = await this.#call(() => this.#redis.get(this.#recordKey(namespace, key)));
    return raw === null ? undefined : (readEnvelope<T>(raw).v as T);
  }

  async set<T>(namespace: string, key: string, value: T, options: SetOptions = {}): Promise<void> {
    await this.#write(namespace, key, value, options, 'set');
  }

  async setMany(writes: readonly StoreWrite[]): Promise<void> {
    const calls = writes.map((write) => this.#setRecordCall(write, 'set'));
    if (calls.length === 0) return;
    await this.#call(() => runScriptBatch(this.#redis, setRecordScript, calls));
  }

  async setIfAbsent<T>(namespace: string, key: string, value: T, options: SetOptions = {}): Promise<boolean> {
    return (await this.#write(namespace, key, value, options, 'nx')) === 1;
  }

  async delete(namespace: string, key: string): Promise<boolean> {
    return (await this.#take(namespace, key)) !== null;
  }

  async consume<T>(namespace: string, key: string): Promise<T | undefined> {
    const raw = await this.#take(namespace, key);
    return raw === null ? undefined : (readEnvelope<T>(raw).v as T);
  }

  async findByIndex<T>(namespace: string, index: string, value: string, range: IndexRangeOptions = {}): Promise<StoreEntry<T>[]> {
    assertStoreName('namespace', namespace);
    const indexKey = this.#indexKey(namespace, index, value);
    // The index is a set: the range is cut from its members (keys only, small), and only the records in it are read.
    let keys = (await this.#call(() => this.#redis.smembers(indexKey))).sort();
    const { after, before, limit, descending } = range;
    if (after !== undefined || before !== undefined) keys = keys.filter((key) => (after === undefined || key > after) && (before === undefined || key < before));
    if (descending === true) keys.reverse();
    if (limit !== undefined) keys = keys.slice(0, limit);
    return this.#entries<T>(namespace, keys, indexKey, 'set');
  }

  async addIndexes(namespace: string, key: string, indexes: Record<string, string>): Promise<boolean> {
    assertStoreName('namespace', namespace);
    for (const name of Object.keys(indexes)) assertStoreName('index', name);
    const recordKey = this.#recordKey(namespace, key);
    // Compare-and-set: a record rewritten between the read and the script is read again. A few rounds are plenty;
    // a record rewritten that often is being written by code that sets its indexes itself.
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const raw = await this.#call(() => this.#redis.get(recordKey));
      if (raw === null) return false;
      const envelope = readEnvelope<unknown>(raw);
      // Indexes pointing at a value nobody can read would find it for ever; a reader of the record is told instead.
      if (envelope.v instanceof UnreadableValue) throw new GatehouseError('GH_RECORD_INVALID', `a record of ${namespace} is ${envelope.v.problem}; its indexes were not added`);
      const added = Object.entries(indexes).filter(([name]) => envelope.i?.[name] === undefined);
      if (added.length === 0) return true;
      const updated = JSON.stringify({ ...envelope, i: { ...envelope.i, ...Object.fromEntries(added) } });
      const args = [this.#indexPrefix(namespace), key, raw, updated, ...added.flat()];
      if (Number(await this.#call(() => runScript(this.#redis, addIndexesScript, [recordKey], args))) === 1) return true;
    }
    throw new StoreUnavailableError(`record ${namespace}/… kept changing while its indexes were added`);
  }

  async deleteByIndex(namespace: string, index: string, value: string): Promise<number> {
    assertStoreName('namespace', namespace);
    const keys = [this.#indexKey(namespace, index, value), this.#listKey(namespace)];
    const args = [this.#indexPrefix(namespace), this.#recordPrefix(namespace)];
    return Number(await this.#call(() => runScript(this.#redis, deleteByIndexScript, keys, args)));
  }

  async list<T>(namespace: string, options: ListOptions = {}): Promise<StoreEntry<T>[]> {
    assertStoreName('namespace', namespace);
    assertListLimit(options.limit);
    const { limit = Number.POSITIVE_INFINITY, after } = options;
    const listKey = this.#listKey(namespace);
    const found: StoreEntry<T>[] = [];
    let cursor = after === undefined ? '-' : `(${after}`;
    // Members of expired records are skipped (and cleaned), so a page may need more than one batch to fill.
    while (found.length < limit) {
      const batchSize = Math.min(Math.max(limit - found.length, 50), 1000);
      const keys = await this.#call(() => this.#redis.zrangebylex(listKey, cursor, '+', 'LIMIT', 0, batchSize));
      found.push(...(await this.#entries<T>(namespace, keys, listKey, 'zset')));
      const last = keys.at(-1);
      if (last === undefined || keys.length < batchSize) break;
      cursor = `(${last}`;
    }
    return found.slice(0, limit);
  }

  async increment(namespace: string, key: string, ttlSeconds: number, by = 1): Promise<number> {
    assertStoreName('namespace', namespace);
    const ttlMs = ttlMilliseconds(ttlSeconds) ?? 0;
    const counterKey = `${this.#prefix}c:${namespace}#${key}`;
    return Number(await this.#call(() => runScript(this.#redis, incrementScript, [counterKey], [by, ttlMs])));
  }

  async acquireLock(name: string, ttlMs: number): Promise<ReleaseLock | undefined> {
    assertStoreName('lock', name);
    assertLockTtl(ttlMs);
    const lockKey = `${this.#prefix}lock:${name}`;
    const token = randomUUID();
    const taken = await this.#call(() => this.#redis.set(lockKey, token, 'PX', Math.ceil(ttlMs), 'NX'));
    if (taken !== 'OK') return undefined;
    return async () => {
      await this.#call(() => runScript(this.#redis, releaseLockScript, [lockKey], [token]));
    };
  }

  async publish(channel: string, message: string): Promise<void> {
    assertStoreName('channel', channel);
    await this.#call(() => this.#redis.publish(`${this.#prefix}ch:${channel}`, message));
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<Unsubscribe> {
    assertStoreName('channel', channel);
    return this.#subscriptions.subscribe(channel, onMessage);
  }

  async purgeExpired(): Promise<number> {
    return this.#call(() => purgeStaleMembers(this.#redis, this.#prefix));
  }

  async ping(): Promise<void> {
    await this.#call(() => this.#redis.ping());
  }

  /**
   * An evicting `maxmemory-policy` drops keys when Redis is full: a grant, a revocation record (a revoked token is
   * accepted again), a lock, sealed upstream tokens. Read from `INFO memory`, which managed Redis services allow where
   * they refuse `CONFIG GET`; a server that says nothing is not judged.
   */
  async configurationRisks(): Promise<string[]> {
    const risks: string[] = [];
    const memory = await this.#call(() => this.#redis.info('memory'));
    const policy = /^maxmemory_policy:(\S+)/m.exec(memory)?.[1];
    if (policy !== undefined && policy !== 'noeviction') {
      risks.push(`Redis evicts keys when full (maxmemory-policy ${policy}): a revoked token could be accepted again — set maxmemory-policy noeviction`);
    }
    if (await this.#keepsNothingAcrossRestarts()) {
      risks.push('Redis keeps nothing across a restart (no AOF, no RDB snapshots): a restart signs every user out and forgets recent revocations — set appendonly yes');
    }
    return risks;
  }

  /**
   * No AOF (`INFO persistence`) and no RDB snapshot rule (`CONFIG GET save`). A managed Redis that refuses CONFIG,
   * or says nothing, is not judged.
   */
  async #keepsNothingAcrossRestarts(): Promise<boolean> {
    const persistence = await this.#call(() => this.#redis.info('persistence'));
    if (/^aof_enabled:0\s*$/m.exec(persistence) === null) return false;
    const save = await this.#redis.config('GET', 'save').catch(() => undefined);
    return Array.isArray(save) && save.length === 2 && save[1] === '';
  }

  async close(): Promise<void> {
    this.#purgeTimer.stop();
    await this.#subscriptions.close();
    if (this.#redis.status === 'end') return;
    // QUIT lets pending replies arrive; when the server is already gone, just drop the socket.
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async #write<T>(namespace: string, key: string, value: T, options: SetOptions, mode: 'set' | 'nx') {
    const { keys, args } = this.#setRecordCall({ namespace, key, value, options }, mode);
    return Number(await this.#call(() => runScript(this.#redis, setRecordScript, keys, args)));
  }

  /** KEYS and ARGV of setRecordScript for one record (validated and serialized here, before anything is sent). */
  #setRecordCall({ namespace, key, value, options = {} }: StoreWrite, mode: 'set' | 'nx') {
    assertStoreName('namespace', namespace);
    const ttlMs = ttlMilliseconds(options.ttlSeconds);
    serializeValue(value);
    const envelope: Envelope<unknown> = { v: value };
    if (options.indexes && Object.keys(options.indexes).length > 0) envelope.i = options.indexes;
    if (ttlMs !== undefined) envelope.e = this.#clock.now() + ttlMs;
    const indexArgs = Object.entries(options.indexes ?? {}).flat();
    for (const name of Object.keys(options.indexes ?? {})) assertStoreName('index', name);
    const keys = [this.#recordKey(namespace, key), this.#listKey(namespace)];
    const args = [this.#indexPrefix(namespace), key, JSON.stringify(envelope), ttlMs ?? 0, mode, ...indexArgs];
    return { keys, args };
  }

  async #take(namespace: string, key: string): Promise<string | null> {
    assertStoreName('namespace', namespace);
    const keys = [this.#recordKey(namespace, key), this.#listKey(namespace)];
    const raw = await this.#call(() => runScript(this.#redis, takeRecordScript, keys, [this.#indexPrefix(namespace), key]));
    return typeof raw === 'string' ? raw : null;
  }

  /** Reads the records behind `keys`, in order, and drops the memberships of those that expired. */
  async #entries<T>(namespace: string, keys: string[], setKey: string, kind: 'set' | 'zset'): Promise<StoreEntry<T>[]> {
    if (keys.length === 0) return [];
    const values = await this.#call(() => this.#redis.mget(keys.map((key) => this.#recordKey(namespace, key))));
    const entries: StoreEntry<T>[] = [];
    const stale: string[] = [];
    keys.forEach((key, i) => {
      const raw = values[i];
      if (raw === null || raw === undefined) {
        stale.push(key);
        return;
      }
      const envelope = readEnvelope<T>(raw);
      const entry: StoreEntry<T> = { key, value: envelope.v as T };
      if (envelope.e !== undefined) entry.expiresAt = envelope.e;
      entries.push(entry);
    });
    if (stale.length > 0) {
      const args = [this.#recordPrefix(namespace), kind, ...stale];
      await this.#call(() => runScript(this.#redis, dropStaleMembersScript, [setKey], args));
    }
    return entries;
  }

  #recordPrefix(namespace: string): string {
    return `${this.#prefix}r:${namespace}#`;
  }

  #recordKey(namespace: string, key: string): string {
    return `${this.#recordPrefix(namespace)}${key}`;
  }

  #indexPrefix(namespace: string): string {
    return `${this.#prefix}i:${namespace}#`;
  }

  #indexKey(namespace: string, index: string, value: string): string {
    assertStoreName('index', index);
    return `${this.#indexPrefix(namespace)}${index}=${value}`;
  }

  #listKey(namespace: string): string {
    return `${this.#prefix}l:${namespace}`;
  }

  async #call<R>(operation: () => Promise<R>): Promise<R> {
    const sentOn = this.#connection.generation;
    try {
      return await operation();
    } catch (error) {
      throw this.#connection.describeFailure(error, sentOn);
    }
  }
}
