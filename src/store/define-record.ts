import type { z } from 'zod';
import { assertStoreName } from './names.ts';

/**
 * The records contract: every namespace, counter, lock and channel Gatehouse uses is declared once, with what it
 * holds and how long, and code reaches the store through these declarations (record-access.ts) rather than through
 * string names and casts. docs/storage.md is generated from the declarations (scripts/gen-storage-docs.ts), so the
 * page cannot drift from the code.
 *
 * These helpers live in store/ (not records/) because the storage layers below the shared contracts declare records
 * too: oidc-provider's adapter (store/oidc-records.ts) and the key set (keys/key-set-record.ts). The declarations of
 * the parts' records live in src/records/, and src/records/catalogue.ts lists them all.
 */

/** What every declaration says, for the docs: who writes it, what the key is, how secrets in it are protected. */
interface Described {
  /** The file that writes it (`src/…`); readers are named in `description`. */
  owner: string;
  /** One sentence or more: what it is for and who reads it. */
  description: string;
}

export interface RecordDefinition<T = unknown, I extends string = string> extends Described {
  readonly kind: 'namespace';
  namespace: string;
  /** What the key is, e.g. "SHA-256 (base64url) of the subject". */
  key: string;
  schema: z.ZodType<T>;
  /** How long a record lives, in words (the code passes `ttlSeconds` at each write). */
  ttl: string;
  /** The secondary indexes a write may set; a write naming any other is a programming error. */
  indexes: readonly I[];
  /** Read with `consumeRecord` only, so of concurrent readers exactly one gets it. */
  singleUse: boolean;
  /** What a reader of the store (a backup, `redis-cli`) gets: hashed, sealed, plain. */
  secrets: string;
  /**
   * The key is itself a credential-like value (a `state`, a session id): errors name the namespace but not the key,
   * so a log line never carries it.
   */
  secretKey?: boolean;
}

export interface CounterDefinition extends Described {
  readonly kind: 'counter';
  namespace: string;
  key: string;
  ttl: string;
}

export interface LockDefinition extends Described {
  readonly kind: 'lock';
  /** The lock name, or its fixed first part when `key` is set (`<name>:<key>`). */
  name: string;
  /** What the run-time part of the name is; absent for a single lock. */
  key?: string;
  ttl: string;
}

/** A channel carries a string; a message means "re-check the store", never the only copy of a fact. */
export interface ChannelDefinition extends Described {
  readonly kind: 'channel';
  name: string;
  /** What a message is. */
  message: string;
}

export type StoreDefinition = RecordDefinition<unknown, string> | CounterDefinition | LockDefinition | ChannelDefinition;

export function defineRecord<T, const I extends string = never>(
  definition: Omit<RecordDefinition<T, I>, 'kind' | 'indexes'> & { indexes?: readonly I[] },
): RecordDefinition<T, I> {
  assertStoreName('namespace', definition.namespace);
  for (const index of definition.indexes ?? []) assertStoreName('index', index);
  return { kind: 'namespace', ...definition, indexes: definition.indexes ?? [] };
}

export function defineCounter(definition: Omit<CounterDefinition, 'kind'>): CounterDefinition {
  assertStoreName('namespace', definition.namespace);
  return { kind: 'counter', ...definition };
}

export function defineLock(definition: Omit<LockDefinition, 'kind'>): LockDefinition {
  assertStoreName('lock', definition.name);
  return { kind: 'lock', ...definition };
}

export function defineChannel(definition: Omit<ChannelDefinition, 'kind'>): ChannelDefinition {
  assertStoreName('channel', definition.name);
  return { kind: 'channel', ...definition };
}

/**
 * A reader's view of a record whose shape another party owns (oidc-provider's models): the same namespace, key and
 * indexes, with a schema naming only the fields this reader uses. Not a declaration of its own: the catalogue lists
 * the record once, under its owner.
 */
export function viewRecord<T, I extends string>(definition: RecordDefinition<unknown, I>, schema: z.ZodType<T>): RecordDefinition<T, I> {
  return { ...definition, schema };
}
