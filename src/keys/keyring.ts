import type { JWK, JSONWebKeySet } from 'jose';
import type { KeyObject } from 'node:crypto';

/**
 * The gateway's keys: asymmetric signing keys (access tokens, identity assertions, ID tokens) published as a JWKS,
 * and AES-256-GCM sealing keys for upstream tokens at rest. Each key has an id so rotation never breaks what an older
 * key protects: new material uses the current key, older keys keep verifying/unsealing until pruned.
 */
export type SigningAlgorithm = 'ES256' | 'EdDSA';

export interface SigningKey {
  kid: string;
  alg: SigningAlgorithm;
  privateKey: KeyObject;
  publicJwk: JWK;
  createdAt: number;
}

export interface Keyring {
  /** The key new signatures use. */
  currentSigningKey(): SigningKey;
  /** Every signing key still valid for verification, current first. */
  signingKeys(): readonly SigningKey[];
  /** Public keys of every signing key still valid for verification. */
  publicJwks(): JSONWebKeySet;
  /** Private JWKs of every signing key, current first (what oidc-provider's `jwks` option takes). */
  privateJwks(): JSONWebKeySet;
  /** AES-256-GCM with the current sealing key; `context` is bound as additional data (e.g. the grant id). */
  seal(plaintext: string, context: string): string;
  /** Opens a sealed value with whichever key sealed it; throws SealError if tampered or the key is gone. */
  unseal(sealed: string, context: string): string;
}

/** A keyring that reloads (load-keyring.ts) and says when its keys changed. */
export interface ChangeNotifyingKeyring extends Keyring {
  onChange(listener: () => void): () => void;
}

/**
 * Calls `listener` after every change of the keyring's keys; returns how to stop. A keyring that never changes (a
 * test's fixed one) never calls it. For what is kept per key outside the keyring — imported keys, verified tokens,
 * signed assertions — which must go when a key leaves the set.
 */
export function onKeyringChange(keyring: Keyring, listener: () => void): () => void {
  const notifying = keyring as Partial<ChangeNotifyingKeyring>;
  return typeof notifying.onChange === 'function' ? notifying.onChange.call(keyring, listener) : () => {};
}
