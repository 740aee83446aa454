import { createCipheriv, createDecipheriv, createSecretKey, randomFillSync, type KeyObject } from 'node:crypto';
import { GatehouseError } from '../errors/internal-errors.ts';

/**
 * AES-256-GCM sealing of secrets at rest (upstream refresh/access tokens). The design this replaces used AES with a
 * static IV and no authentication; here every message gets a fresh random 96-bit IV and a 128-bit tag, and the
 * caller's context (e.g. the grant id) is bound as additional authenticated data, so a sealed value copied into
 * another user's record does not open.
 *
 * Envelope: `v1.<kid>.<iv>.<ciphertext>.<tag>`, each part base64url. The key id lets rotation keep old values
 * openable: `unseal` picks whichever key sealed the value.
 *
 * @see NIST SP 800-38D §8.2.2 (random 96-bit IVs; at most 2^32 messages per key, which rotation keeps far off)
 */

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** A sealed value could not be opened. Deliberately says nothing about keys, lengths or which check failed. */
export class SealError extends GatehouseError {
  constructor(message = 'sealed value cannot be opened') {
    super('GH_UNSEAL_FAILED', message);
    this.name = 'SealError';
  }
}

export interface SealingKeyMaterial {
  kid: string;
  /** 32 raw bytes. */
  key: Buffer;
}

/**
 * node:crypto imports a raw Buffer key on every cipher it makes (about 15 µs, most of a seal); a KeyObject is
 * imported once. Keyed by the key's own Buffer, which a key set never changes after loading.
 */
const cipherKeys = new WeakMap<Buffer, KeyObject>();

function cipherKey(key: Buffer): KeyObject {
  let object = cipherKeys.get(key);
  if (object === undefined) {
    object = createSecretKey(key);
    cipherKeys.set(key, object);
  }
  return object;
}

/**
 * IVs are cut from a pool of random bytes refilled from node:crypto 256 IVs at a time: one `randomBytes(12)` cost
 * ≈ 6 µs here (a call into OpenSSL's generator per IV, most of a seal), the pool ≈ 0.1 µs per IV on average. Each
 * slice is handed out once and the pool is refilled only when every slice has been, so no IV repeats; the bytes are
 * the same CSPRNG output either way (nanoid and Node's own `randomUUID` pool theirs the same way). IVs are public, so
 * random bytes waiting in the pool hold no secret.
 */
const IV_POOL_SIZE = IV_BYTES * 256;
const ivPool = Buffer.alloc(IV_POOL_SIZE);
let ivOffset = IV_POOL_SIZE;

/** The next unused IV, as a view of the pool: createCipheriv copies it, and the envelope encodes it at once. */
function nextIv(): Buffer {
  if (ivOffset === IV_POOL_SIZE) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

/**
 * The AAD also names the version and key id, so an envelope cannot be re-labelled; the kid has no `.` or `:` and the
 * prefix is fixed, so the encoding is unambiguous whatever the context contains.
 */
function additionalData(kid: string, context: string): Buffer {
  return Buffer.from(`gatehouse-seal:${VERSION}:${kid}:${context}`, 'utf8');
}

/**
 * Seals `plaintext` under `key`, bound to `context`. The IV comes from node:crypto and is never injectable:
 * a repeated IV under GCM reveals the authentication key, so no test hook is worth that risk.
 */
export function sealValue(key: SealingKeyMaterial, plaintext: string, context: string): string {
  if (key.key.length !== KEY_BYTES) throw new SealError('sealing key must be 32 bytes');
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', cipherKey(key.key), iv, { authTagLength: TAG_BYTES });
  // Encoded before anything else runs: the view must not outlive this call (a later seal takes the next slice, and a
  // refill rewrites this one).
  const ivText = iv.toString('base64url');
  cipher.setAAD(additionalData(key.kid, context));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [VERSION, key.kid, ivText, ciphertext.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

/** The key id a sealed value names, or undefined if it is not an envelope. Useful to re-seal after a rotation. */
export function sealedKeyId(sealed: string): string | undefined {
  const parts = sealed.split('.');
  return parts.length === 5 && parts[0] === VERSION ? parts[1] : undefined;
}

const base64url = /^[A-Za-z0-9_-]*$/;

/** Opens a sealed value with the key it names; throws SealError if malformed, tampered, re-contexted or the key is gone. */
export function unsealValue(findKey: (kid: string) => SealingKeyMaterial | undefined, sealed: string, context: string): string {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== VERSION) throw new SealError();
  const [, kid = '', ivText = '', ciphertextText = '', tagText = ''] = parts;
  if (![ivText, ciphertextText, tagText].every((part) => base64url.test(part))) throw new SealError();
  const key = findKey(kid);
  if (!key || key.key.length !== KEY_BYTES) throw new SealError();
  const iv = Buffer.from(ivText, 'base64url');
  const tag = Buffer.from(tagText, 'base64url');
  // A short tag would let a forger try far fewer guesses; Node accepts shorter tags unless the length is fixed.
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new SealError();
  try {
    const decipher = createDecipheriv('aes-256-gcm', cipherKey(key.key), iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(additionalData(kid, context));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(Buffer.from(ciphertextText, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new SealError();
  }
}
