import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Hashes for secrets Gatehouse must recognise but never needs to read back: tokens and client secrets are stored
 * only as these hashes, so a copy of the store lets no one act as a client or a user.
 */

/**
 * SHA-256 of a token, base64url. Tokens we issue carry ≥ 128 bits of randomness, so no dictionary or brute-force
 * search can invert the hash and a slow KDF would add latency to every request for no security gain; lookups by hash
 * stay a single store get.
 */
export function hashToken(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64url');
}

/**
 * Compares two strings in time that does not depend on where they differ. Both sides are hashed first so the
 * comparison is over equal lengths and the length of the secret does not leak either.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a, 'utf8').digest();
  const right = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(left, right);
}

export interface ScryptParameters {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  r: number;
  p: number;
}

/**
 * Pre-registered client secrets may be chosen by a person, so they get a memory-hard KDF. N = 2^15, r = 8 (32 MiB,
 * tens of milliseconds) keeps token requests fast on a small node while making offline guessing expensive.
 */
export const defaultScryptParameters: ScryptParameters = { ln: 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Bounds for parameters read back from a stored hash, so a corrupted record cannot demand gigabytes of memory. */
const MAX_LN = 20;
const MAX_R = 16;
const MAX_P = 4;

function deriveKey(secret: string, salt: Buffer, params: ScryptParameters): Promise<Buffer> {
  const N = 2 ** params.ln;
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, HASH_BYTES, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64url): the parameters travel with the hash so they can be raised later. */
export async function hashClientSecret(secret: string, params: ScryptParameters = defaultScryptParameters): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await deriveKey(secret, salt, params);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

const storedHash = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d)\$([A-Za-z0-9_-]{16,})\$([A-Za-z0-9_-]{43})$/;

const SCRYPT_PREFIX = '$scrypt$';
const GENERATED_PREFIX = '$sha256$';

/**
 * `$sha256$<hash>`: a client secret the authorization server generated itself (oidc-provider issues 64 random bytes
 * to a registered client). Nothing is left to guess offline in a 512-bit secret, so a slow KDF buys nothing — and
 * it cost ≈ 90 ms of CPU per token request: anyone could register a confidential client and send wrong secrets, and
 * every one of them took scrypt's time from the requests of everyone else.
 */
export function hashGeneratedSecret(secret: string): string {
  return `${GENERATED_PREFIX}${hashToken(secret)}`;
}

/** Whether a stored client secret is one of the hashes above (else it is a secret kept as it was configured). */
export function isHashedClientSecret(stored: string): boolean {
  return stored.startsWith(SCRYPT_PREFIX) || stored.startsWith(GENERATED_PREFIX);
}

/**
 * Long enough and in the alphabet of a generated secret (≥ 256 bits of base64url): only such a secret is hashed
 * the fast way, whatever reaches the store — anything shorter gets scrypt as a person's choice would.
 */
export function looksGenerated(secret: string): boolean {
  return secret.length >= 43 && /^[A-Za-z0-9_-]+$/.test(secret);
}

/** True when `secret` matches a hash from hashClientSecret or hashGeneratedSecret; false for a wrong one or an unreadable hash. */
export async function verifyClientSecret(secret: string, hash: string): Promise<boolean> {
  if (hash.startsWith(GENERATED_PREFIX)) return constantTimeEqual(hashGeneratedSecret(secret), hash);
  const match = storedHash.exec(hash);
  if (!match) return false;
  const params = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  if (params.ln < 1 || params.ln > MAX_LN || params.r < 1 || params.r > MAX_R || params.p < 1 || params.p > MAX_P) return false;
  const expected = Buffer.from(match[5] ?? '', 'base64url');
  const actual = await deriveKey(secret, Buffer.from(match[4] ?? '', 'base64url'), params);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
