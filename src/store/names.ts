import { UnreadableValue } from './store.ts';

/**
 * Namespaces and channel names are chosen by code, never by a request, and they become part of Redis keys and
 * channel names. Keeping them to a small alphabet (no `#`, spaces or glob characters) means a key can never be read
 * as a different namespace's key and a `SCAN` pattern can never match more than it should.
 */
const namePattern = /^[A-Za-z0-9][A-Za-z0-9:_.-]{0,99}$/;

export function assertStoreName(kind: 'namespace' | 'index' | 'channel' | 'lock', name: string): void {
  if (!namePattern.test(name)) {
    throw new TypeError(`invalid store ${kind} ${JSON.stringify(name)}: use letters, digits and : _ . - only`);
  }
}

/** Milliseconds a `ttlSeconds` option stands for, or undefined when the record does not expire. */
export function ttlMilliseconds(ttlSeconds: number | undefined): number | undefined {
  if (ttlSeconds === undefined || ttlSeconds === 0) return undefined;
  if (!Number.isFinite(ttlSeconds) || ttlSeconds < 0) {
    throw new RangeError(`invalid ttlSeconds ${ttlSeconds}: must be a positive number of seconds`);
  }
  // A lifetime computed from outside input (a JWT's `exp`) may be absurd; beyond a century it is "for ever" to every
  // record here, and Redis refuses an expiry past its integer range (a 500 where a record was wanted).
  return Math.min(Math.ceil(ttlSeconds * 1000), LONGEST_TTL_MS);
}

/** The longest expiry a store sets: a hundred years. */
const LONGEST_TTL_MS = 100 * 365 * 24 * 3600 * 1000;

/** A page size for `list`: a non-negative integer, or undefined for "all". */
export function assertListLimit(limit: number | undefined): void {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new RangeError(`invalid list limit ${limit}: must be a non-negative integer`);
  }
}

/** JSON text of a record value; `undefined` has none, and storing it would read back as "no record". */
export function serializeValue(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError('a store value must be JSON-serializable (got undefined or a function)');
  return text;
}

/** A value from its stored JSON text, or an UnreadableValue when the text is not JSON. */
export function parseStoredValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return new UnreadableValue();
  }
}

/** A lock TTL: a positive number of milliseconds (a lock that never expires could block every replica forever). */
export function assertLockTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`invalid lock ttlMs ${ttlMs}: must be a positive number of milliseconds`);
  }
}
