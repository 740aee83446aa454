import { createPrivateKey, type JsonWebKeyInput } from 'node:crypto';
import type { JSONWebKeySet, JWK } from 'jose';
import { currentKey, type KeySetFile, type SigningKeyRecord } from './key-set.ts';
import type { Keyring, SigningKey } from './keyring.ts';
import { sealValue, unsealValue, type SealingKeyMaterial } from './sealing.ts';

/** Members of a public JWK; everything else (`d`, and any private or unknown member) is dropped before publishing. */
const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y'] as const;

function toSigningKey(record: SigningKeyRecord): SigningKey {
  const publicJwk: JWK = { kid: record.kid, alg: record.alg, use: 'sig' };
  for (const member of PUBLIC_MEMBERS) {
    const value = record.jwk[member];
    if (typeof value === 'string') publicJwk[member] = value;
  }
  return {
    kid: record.kid,
    alg: record.alg,
    privateKey: createPrivateKey({ key: record.jwk as JsonWebKeyInput['key'], format: 'jwk' }),
    publicJwk,
    createdAt: record.createdAt,
  };
}

/**
 * An immutable keyring over one validated key set. The reloading keyring (load-keyring.ts) swaps one of these for
 * another when the key set changes, so a request never sees half a rotation.
 */
export function keyringFromKeySet(keySet: KeySetFile): Keyring {
  const current = currentKey(keySet.signingKeys);
  // Current first: oidc-provider signs with the first key of a matching algorithm.
  const signingRecords = [current, ...keySet.signingKeys.filter((key) => key !== current)];
  const signingKeys = signingRecords.map(toSigningKey);
  const currentSigning = signingKeys[0] as SigningKey;

  const sealingKeys = new Map<string, SealingKeyMaterial>(
    keySet.sealingKeys.map((key) => [key.kid, { kid: key.kid, key: Buffer.from(key.k, 'base64url') }]),
  );
  const currentSealing = sealingKeys.get(currentKey(keySet.sealingKeys).kid) as SealingKeyMaterial;

  const publicJwks: JSONWebKeySet = { keys: signingKeys.map((key) => key.publicJwk) };
  const privateJwks: JSONWebKeySet = {
    keys: signingRecords.map((record) => ({ ...record.jwk, kid: record.kid, alg: record.alg, use: 'sig' })),
  };

  return {
    currentSigningKey: () => currentSigning,
    signingKeys: () => signingKeys,
    // Copies, so a caller that edits the set it was given cannot change what everyone else publishes.
    publicJwks: () => structuredClone(publicJwks),
    privateJwks: () => structuredClone(privateJwks),
    seal: (plaintext, context) => sealValue(currentSealing, plaintext, context),
    unseal: (sealed, context) => unsealValue((kid) => sealingKeys.get(kid), sealed, context),
  };
}
