import { hkdfSync } from 'node:crypto';
import type { Keyring } from './keyring.ts';

/**
 * Symmetric keys derived from the keyring's signing keys, one per purpose (`info`), current first: every replica
 * derives the same ones without another secret to configure, and they rotate with the keyring (the current one
 * makes new values; the others still verify what older keys made).
 */
export function deriveKeys(keyring: Keyring, info: string): Buffer[] {
  return keyring.privateJwks().keys.flatMap((jwk) => {
    const secret = typeof jwk.d === 'string' ? jwk.d : undefined;
    if (secret === undefined) return [];
    return [Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'base64url'), Buffer.alloc(0), info, 32))];
  });
}
