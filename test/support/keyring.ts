import { generateKeySet } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import type { Keyring } from '../../src/keys/keyring.ts';

/** A fresh in-memory keyring (ES256 signing, AES-256-GCM sealing), as a new deployment generates it. */
export function testKeyring(now = Date.now(), signingAlgorithm: 'ES256' | 'EdDSA' = 'ES256'): Keyring {
  return keyringFromKeySet(generateKeySet({ now, signingAlgorithm }));
}
