import { hkdfSync } from 'node:crypto';
import type { Keyring } from '../keys/keyring.ts';

/**
 * Keys oidc-provider signs its session and interaction cookies with (Keygrip). Derived from the keyring's signing
 * keys so every replica has the same ones without another secret to configure, and they rotate with the keyring
 * (current first: it signs; the others still verify).
 */
export function deriveCookieKeys(keyring: Keyring): string[] {
  return keyring.privateJwks().keys.flatMap((jwk) => {
    const secret = typeof jwk.d === 'string' ? jwk.d : undefined;
    if (secret === undefined) return [];
    const key = hkdfSync('sha256', Buffer.from(secret, 'base64url'), Buffer.alloc(0), 'gatehouse oidc-provider cookies', 32);
    return [Buffer.from(key).toString('base64url')];
  });
}
