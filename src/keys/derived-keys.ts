import { createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import type { Keyring } from './keyring.ts';

/**
 * Symmetric keys derived from the keyring's signing keys, one per purpose (`info`), current first: every replica
 * derives the same ones without another secret to configure, and they rotate with the keyring (the current one
 * makes new values; the others still verify what older keys made).
 *
 * Derived once per loaded key set and purpose, not per call: deriving means a deep copy of the private JWKS and an
 * HKDF per key, and the DPoP nonce check asks on every request. A reload builds a new key set, whose current signing
 * key is a new object, so the caches (keyed by that object) follow a rotation at once.
 */
type PerKeySet<T> = WeakMap<object, Map<string, T>>;

function cachedPerKeySet<T>(cache: PerKeySet<T>, keyring: Keyring, info: string, derive: () => T): T {
  const keySet = keyring.currentSigningKey();
  let byPurpose = cache.get(keySet);
  if (byPurpose === undefined) {
    byPurpose = new Map();
    cache.set(keySet, byPurpose);
  }
  let value = byPurpose.get(info);
  if (value === undefined) {
    value = derive();
    byPurpose.set(info, value);
  }
  return value;
}

const rawKeys: PerKeySet<Buffer[]> = new WeakMap();
const hmacKeys: PerKeySet<KeyObject[]> = new WeakMap();

export function deriveKeys(keyring: Keyring, info: string): Buffer[] {
  const keys = cachedPerKeySet(rawKeys, keyring, info, () =>
    keyring.privateJwks().keys.flatMap((jwk) => {
      const secret = typeof jwk.d === 'string' ? jwk.d : undefined;
      if (secret === undefined) return [];
      return [Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'base64url'), Buffer.alloc(0), info, 32))];
    }),
  );
  // Copies: a caller that overwrote a key it was given must not change everyone else's.
  return keys.map((key) => Buffer.from(key));
}

/**
 * The same keys as KeyObjects, for HMAC: node:crypto imports a raw Buffer key on every `createHmac` (about 18 µs
 * here) and a KeyObject once (about 2 µs per MAC after that).
 */
export function deriveHmacKeys(keyring: Keyring, info: string): KeyObject[] {
  return cachedPerKeySet(hmacKeys, keyring, info, () => deriveKeys(keyring, info).map((key) => createSecretKey(key)));
}
