import { GatehouseError } from '../errors/internal-errors.ts';
/**
 * The one storage interface every part of Gatehouse uses. Two implementations share it (SQLite for a single node,
 * Redis for replicas) and one contract suite (test/store/contract.ts) runs unchanged against both.
 *
 * Records live in a namespace (`grant`, `client`, `oidc:AccessToken`, …; see docs/storage.md) under a key. Values are
 * JSON; one stored that is not (cut off, hand-edited, another program's) reads as an UnreadableValue. A TTL makes a record invisible once it passes and lets the backend purge it; secondary indexes let a record be
 * found by grant id, user or client without a scan.
 */
export interface StoreEntry<T> {
  key: string;
  value: T;
  /** Epoch milliseconds after which the record is gone, if it has a TTL. */
  expiresAt?: number;
}

export interface SetOptions {
  /** Seconds until the record expires; omitted or 0 means it does not expire. */
  ttlSeconds?: number;
  /** Secondary index values, e.g. `{ grantId: 'g1', userId: 'u1' }`, replacing any the record had. */
  indexes?: Record<string, string>;
}

/** One record of a `setMany` batch. */
export interface StoreWrite<T = unknown> {
  namespace: string;
  key: string;
  value: T;
  options?: SetOptions;
}

export interface ListOptions {
  limit?: number;
  /** Return keys strictly after this one (keys are returned in ascending order). */
  after?: string;
}

/**
 * A bounded index read: only keys strictly between `after` and `before`, at most `limit` of them, in key order or
 * (`descending`) the reverse — where keys sort by time (the audit log's), the newest first. Without it a read returns
 * every record of the value, which for a busy user's audit trail was hundreds of thousands of records at once.
 */
export interface IndexRangeOptions {
  after?: string;
  before?: string;
  limit?: number;
  descending?: boolean;
}

/** Releases a lock; a no-op if the lock already expired and someone else holds it. */
export type ReleaseLock = () => Promise<void>;

export type Unsubscribe = () => Promise<void>;

export interface Store {
  readonly kind: 'sqlite' | 'redis';

  get<T>(namespace: string, key: string): Promise<T | undefined>;
  set<T>(namespace: string, key: string, value: T, options?: SetOptions): Promise<void>;
  /**
   * Writes a batch of records as `set` would, in one round trip: one transaction (SQLite) or one MULTI (Redis).
   * For writers of many small records (the audit log), where one round trip per record is the cost.
   */
  setMany(writes: readonly StoreWrite[]): Promise<void>;
  /** Sets only if no live record exists; true when this call created it. */
  setIfAbsent<T>(namespace: string, key: string, value: T, options?: SetOptions): Promise<boolean>;
  delete(namespace: string, key: string): Promise<boolean>;
  /**
   * Atomically reads and deletes a record: of any number of concurrent callers exactly one gets the value.
   * This is what makes authorization codes, consent records and upstream `state` single-use.
   */
  consume<T>(namespace: string, key: string): Promise<T | undefined>;

  findByIndex<T>(namespace: string, index: string, value: string, range?: IndexRangeOptions): Promise<StoreEntry<T>[]>;
  /**
   * Adds index values to a live record without touching its value or TTL; an index the record already has keeps its
   * value. False when there is no live record. For indexes declared after records were written (an upgrade), where
   * rewriting the value could undo a concurrent write.
   */
  addIndexes(namespace: string, key: string, indexes: Record<string, string>): Promise<boolean>;
  deleteByIndex(namespace: string, index: string, value: string): Promise<number>;
  list<T>(namespace: string, options?: ListOptions): Promise<StoreEntry<T>[]>;

  /** Adds `by` to a counter that expires `ttlSeconds` after it was created; returns the new value. */
  increment(namespace: string, key: string, ttlSeconds: number, by?: number): Promise<number>;

  /**
   * A lock held across every replica sharing this store (single-flight token refresh). Returns undefined when
   * another holder has it. The lock expires after `ttlMs` so a crashed holder cannot block others forever.
   */
  acquireLock(name: string, ttlMs: number): Promise<ReleaseLock | undefined>;

  /** Cache invalidation across replicas (e.g. grant revocations). Delivery is best effort and at most once. */
  publish(channel: string, message: string): Promise<void>;
  subscribe(channel: string, onMessage: (message: string) => void): Promise<Unsubscribe>;

  /** Deletes expired records now; returns how many went. */
  purgeExpired(): Promise<number>;
  /** Throws a StoreUnavailableError when the backend cannot be reached. */
  ping(): Promise<void>;
  /**
   * What in the backend's own settings can lose records Gatehouse relies on (a Redis that evicts keys under memory
   * pressure), one line each, for `gatehouse doctor` and the start-up log; empty when nothing is known to be wrong.
   */
  configurationRisks?(): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * What a read returns for a stored value that is not JSON (`{"v":{"sealed":1}` cut off, a hand edit, another program
 * sharing the Redis prefix), in place of the value. A read that threw on it failed the whole call as if the store were
 * down — a lasting 503 for the user whose cached token it was, until the record expired. In its place, every
 * validating reader (src/store/record-access.ts) refuses it as it refuses any record that does not match its
 * declaration: as absent for a cache, as GH_RECORD_INVALID for a record that must not be guessed at, skipped in a
 * listing that skips.
 */
export class UnreadableValue {
  readonly problem = 'not JSON (cut off or corrupt)';
}

/**
 * THE error for "the store cannot serve now" (Redis down or frozen, SQLite locked or full), thrown by every backend.
 * Its message is private detail for logs (it names the endpoint); the error handler answers clients with
 * `503 temporarily_unavailable` and `Retry-After: retryAfterSeconds`, never with this message.
 */
export class StoreUnavailableError extends GatehouseError {
  /** When a client may usefully retry: the store-health probe's next attempt. */
  readonly retryAfterSeconds: number;
  constructor(message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super('GH_STORE_UNAVAILABLE', message, options);
    this.name = 'StoreUnavailableError';
    this.retryAfterSeconds = options?.retryAfterSeconds ?? 1;
  }

  /** What went wrong, for the log (never for a client). */
  get detail(): string {
    return this.message;
  }
}

/**
 * Log fields for a failed store call in a background task (a re-sync, a purge): an outage is an expected event,
 * logged as its one-line reason every time the task retries; anything else is a bug, logged with its stack.
 */
export function storeFailureLogFields(error: unknown): { reason: string } | { err: unknown } {
  return error instanceof StoreUnavailableError ? { reason: error.detail } : { err: error };
}

/**
 * Runs `operation` up to `tries` times while the store is unavailable, `delayMs` apart; undefined when it never
 * answered. For reading back a write whose outcome is unknown (its reply was lost): a store that lost one reply
 * usually answers the next command. Any other error is thrown at once.
 */
export async function whenStoreAnswers<T>(operation: () => Promise<T>, options: { tries?: number; delayMs?: number } = {}): Promise<{ value: T } | undefined> {
  const { tries = 3, delayMs = 200 } = options;
  for (let attempt = 0; attempt < tries; attempt += 1) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    try {
      return { value: await operation() };
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
    }
  }
  return undefined;
}
