import { deriveKeys } from '../keys/derived-keys.ts';
import type { Keyring } from '../keys/keyring.ts';

/**
 * Keys oidc-provider signs its session and interaction cookies with (Keygrip). Derived from the keyring's signing
 * keys so every replica has the same ones without another secret to configure, and they rotate with the keyring
 * (current first: it signs; the others still verify).
 */
export function deriveCookieKeys(keyring: Keyring): string[] {
  return deriveKeys(keyring, 'gatehouse oidc-provider cookies').map((key) => key.toString('base64url'));
}
