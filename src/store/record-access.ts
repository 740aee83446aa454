import { GatehouseError } from '../errors/internal-errors.ts';
import type { ChannelDefinition, CounterDefinition, LockDefinition, RecordDefinition } from './define-record.ts';
import { UnreadableValue, type IndexRangeOptions, type ListOptions, type ReleaseLock, type Store, type StoreEntry, type StoreWrite, type Unsubscribe } from './store.ts';

/**
 * Typed access to the records declared with defineRecord (define-record.ts). Every read validates the stored value
 * against the declaration's schema: a value read from the store is input like any other — corrupted by a bug, a
 * hand edit, or written by another program sharing the Redis prefix — and a cast would let it through to code that
 * trusts its shape (STYLE.md §16).
 *
 * What a read does with an invalid record is the caller's choice, made where the consequence is known:
 * - `invalid: 'throw'` (the default): a RecordInvalidError (`GH_RECORD_INVALID`). For records whose absence would
 *   grant something (a console session, consent state) or would silently lose data (an account).
 * - `invalid: 'absent'`: reads as no record. For caches and hints the code can rebuild (a cached downstream token,
 *   a remembered failure): the cost of a corrupt entry is one miss, not an outage for that user.
 * Listings take `'throw'` or `'skip'` likewise.
 */

/** A stored record does not match its declaration. The message names the namespace and fields, never the value. */
export class RecordInvalidError extends GatehouseError {
  readonly namespace: string;
  constructor(definition: RecordDefinition<unknown, string>, key: string, problems: string) {
    const where = definition.secretKey ? `a record of ${definition.namespace}` : `record ${definition.namespace}/${key}`;
    super('GH_RECORD_INVALID', `${where} does not match its declaration (${problems}); it is corrupt or was written by something else`);
    this.name = 'RecordInvalidError';
    this.namespace = definition.namespace;
  }
}

export type OnInvalidRead = 'throw' | 'absent';
export type OnInvalidEntry = 'throw' | 'skip';

export interface WriteOptions<I extends string> {
  ttlSeconds?: number | undefined;
  indexes?: Partial<Record<I, string>>;
}

/** Reads one record with `take` (`get`, or `consume`: read and delete in one atomic step), validated after it is taken. */
const readWith =
  (take: 'get' | 'consume') =>
  async <T, I extends string>(store: Store, definition: RecordDefinition<T, I>, key: string, options: { invalid?: OnInvalidRead } = {}): Promise<T | undefined> =>
    validated(definition, key, await store[take]<unknown>(definition.namespace, key), options.invalid ?? 'throw');

/** The record under `key`, validated; undefined when there is none (or, with `invalid: 'absent'`, when it is invalid). */
export const readRecord = readWith('get');

/** Reads and deletes in one atomic step (single-use records); the value is validated after it is taken. */
export const consumeRecord = readWith('consume');

export async function findRecords<T, I extends string>(
  store: Store,
  definition: RecordDefinition<T, I>,
  index: I,
  value: string,
  options: { invalid?: OnInvalidEntry } = {},
): Promise<StoreEntry<T>[]> {
  assertDeclaredIndexes(definition, [index]);
  return validEntries(definition, await store.findByIndex<unknown>(definition.namespace, index, value), options.invalid ?? 'throw');
}

export async function listRecords<T, I extends string>(
  store: Store,
  definition: RecordDefinition<T, I>,
  options: ListOptions & { invalid?: OnInvalidEntry } = {},
): Promise<StoreEntry<T>[]> {
  const { invalid = 'throw', ...page } = options;
  return validEntries(definition, await store.list<unknown>(definition.namespace, page), invalid);
}

/**
 * Visits every live record of a namespace a page at a time, skipping invalid ones, until `visit` answers `'stop'`;
 * pages follow the keys as stored, so a skipped record does not end the walk early. Between pages the event loop
 * runs (a SQLite page is read synchronously: a walk of tens of thousands of records would otherwise hold every
 * request for its whole length). Returns how many valid records were visited.
 */
export async function forEachRecordPage<T, I extends string>(
  store: Store,
  definition: RecordDefinition<T, I>,
  pageSize: number,
  visit: (page: StoreEntry<T>[]) => Promise<void | 'stop'>,
): Promise<number> {
  let visited = 0;
  let after: string | undefined;
  for (;;) {
    const raw = await store.list<unknown>(definition.namespace, { limit: pageSize, ...(after === undefined ? {} : { after }) });
    const page = validEntries(definition, raw, 'skip');
    visited += page.length;
    if (page.length > 0 && (await visit(page)) === 'stop') return visited;
    after = raw.at(-1)?.key;
    if (raw.length < pageSize) return visited;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Keys only, values unread: for a reader to whom a record's existence is the fact (a revoked grant). */
export async function listRecordKeys(store: Store, definition: RecordDefinition<unknown, string>, options: ListOptions = {}): Promise<string[]> {
  return (await store.list<unknown>(definition.namespace, options)).map((entry) => entry.key);
}

/** Writes one record with `put`: `set`, or `setIfAbsent` (only when no live record exists; true when this call created it). */
const writeWith =
  <P extends 'set' | 'setIfAbsent'>(put: P) =>
  async <T, I extends string>(store: Store, definition: RecordDefinition<T, I>, key: string, value: T, options: WriteOptions<I> = {}): Promise<Awaited<ReturnType<Store[P]>>> =>
    // async: an undeclared index is a rejected promise, like a store failure, never a synchronous throw.
    (await store[put](definition.namespace, key, value, storeOptions(definition, options))) as Awaited<ReturnType<Store[P]>>;

export const writeRecord = writeWith('set');

/** Writes only when no live record exists (setIfAbsent); true when this call created it. */
export const createRecord = writeWith('setIfAbsent');

/** One write of a `setMany` batch. */
export function recordWrite<T, I extends string>(definition: RecordDefinition<T, I>, key: string, value: T, options: WriteOptions<I> = {}): StoreWrite<T> {
  return { namespace: definition.namespace, key, value, options: storeOptions(definition, options) };
}

export function deleteRecord(store: Store, definition: RecordDefinition<unknown, string>, key: string): Promise<boolean> {
  return store.delete(definition.namespace, key);
}

/**
 * One page of a bounded index read: the valid records (invalid ones skipped), how many the store returned, and the
 * last key it returned — where the next page starts. Paging on the valid count alone stopped early at a page that
 * held one invalid record, as if the range were exhausted.
 */
export async function findRecordPage<T, I extends string>(
  store: Store,
  definition: RecordDefinition<T, I>,
  index: I,
  value: string,
  range: IndexRangeOptions & { limit: number },
): Promise<{ entries: StoreEntry<T>[]; read: number; lastKey?: string }> {
  assertDeclaredIndexes(definition, [index]);
  const raw = await store.findByIndex<unknown>(definition.namespace, index, value, range);
  const last = raw[raw.length - 1];
  return { entries: validEntries(definition, raw, 'skip'), read: raw.length, ...(last === undefined ? {} : { lastKey: last.key }) };
}

/** Adds index values to a live record, keeping its value and TTL (store.addIndexes); false when there is none. */
export function addRecordIndexes<I extends string>(store: Store, definition: RecordDefinition<unknown, I>, key: string, indexes: Partial<Record<I, string>>): Promise<boolean> {
  assertDeclaredIndexes(definition, Object.keys(indexes));
  return store.addIndexes(definition.namespace, key, indexes as Record<string, string>);
}

export function deleteRecords<I extends string>(store: Store, definition: RecordDefinition<unknown, I>, index: I, value: string): Promise<number> {
  assertDeclaredIndexes(definition, [index]);
  return store.deleteByIndex(definition.namespace, index, value);
}

export function incrementCounter(store: Store, definition: CounterDefinition, key: string, ttlSeconds: number, by?: number): Promise<number> {
  return store.increment(definition.namespace, key, ttlSeconds, by);
}

/** The store name of a lock: the declared name, or `<name>:<key>` for a lock declared per key. */
export function lockName(definition: LockDefinition, key?: string): string {
  if ((definition.key === undefined) !== (key === undefined)) {
    throw new TypeError(`lock ${definition.name} ${definition.key === undefined ? 'takes no key' : `needs a key (${definition.key})`}`);
  }
  return key === undefined ? definition.name : `${definition.name}:${key}`;
}

export function acquireNamedLock(store: Store, definition: LockDefinition, ttlMs: number, key?: string): Promise<ReleaseLock | undefined> {
  return store.acquireLock(lockName(definition, key), ttlMs);
}

export function publishMessage(store: Store, definition: ChannelDefinition, message: string): Promise<void> {
  return store.publish(definition.name, message);
}

export function subscribeChannel(store: Store, definition: ChannelDefinition, onMessage: (message: string) => void): Promise<Unsubscribe> {
  return store.subscribe(definition.name, onMessage);
}

function validated<T>(definition: RecordDefinition<T, string>, key: string, value: unknown, invalid: OnInvalidRead): T | undefined {
  if (value === undefined) return undefined;
  const result = checked(definition, value);
  if (result.valid) return result.record;
  if (invalid === 'absent') return undefined;
  throw new RecordInvalidError(definition, key, result.problems);
}

function validEntries<T>(definition: RecordDefinition<T, string>, entries: StoreEntry<unknown>[], invalid: OnInvalidEntry): StoreEntry<T>[] {
  const valid: StoreEntry<T>[] = [];
  for (const entry of entries) {
    const result = checked(definition, entry.value);
    if (result.valid) valid.push({ ...entry, value: result.record });
    else if (invalid === 'throw') throw new RecordInvalidError(definition, entry.key, result.problems);
  }
  return valid;
}

/** A stored value as a record of `definition`, or why it is not one: not JSON at all (UnreadableValue), or not its shape. */
function checked<T>(definition: RecordDefinition<T, string>, value: unknown): { valid: true; record: T } | { valid: false; problems: string } {
  if (value instanceof UnreadableValue) return { valid: false, problems: `value: ${value.problem}` };
  const result = definition.schema.safeParse(value);
  return result.success ? { valid: true, record: result.data } : { valid: false, problems: describeIssues(result.error.issues) };
}

/** Paths and zod's messages, which state what was expected, not the value found. */
function describeIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length === 0 ? 'value' : issue.path.map(String).join('.')}: ${issue.message}`)
    .join('; ');
}

function storeOptions<I extends string>(definition: RecordDefinition<unknown, I>, options: WriteOptions<I>) {
  const indexes = options.indexes as Record<string, string> | undefined;
  if (indexes !== undefined) assertDeclaredIndexes(definition, Object.keys(indexes));
  return { ...(options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds }), ...(indexes === undefined ? {} : { indexes }) };
}

/** An index the declaration does not list is a programming error: it would be written but never documented. */
function assertDeclaredIndexes(definition: RecordDefinition<unknown, string>, names: readonly string[]): void {
  for (const name of names) {
    if (!definition.indexes.includes(name)) {
      throw new TypeError(`index ${JSON.stringify(name)} is not declared for namespace ${definition.namespace}`);
    }
  }
}
