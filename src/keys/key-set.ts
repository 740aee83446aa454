import { createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKeyInput } from 'node:crypto';
import type { JWK } from 'jose';
import { z } from 'zod';
import { cryptoRandom, type Random } from '../runtime/random.ts';
import type { SigningAlgorithm } from './keyring.ts';
import { GatehouseError } from '../errors/internal-errors.ts';

/**
 * The key set: every signing and sealing key Gatehouse holds, in the one shape used by the key file written by
 * `gatehouse init` (`keys.source: file`) and by the `keys` record in the store (`keys.source: store`).
 *
 * Exactly one key of each kind is current (no `retiredAt`): new signatures and sealed values use it. Retired keys stay
 * so tokens and sealed records made before a rotation keep verifying/opening until `gatehouse keys prune` removes
 * them (see rotation.ts for when that is safe). Times are epoch milliseconds.
 */
export interface SigningKeyRecord {
  kid: string;
  alg: SigningAlgorithm;
  createdAt: number;
  retiredAt?: number;
  /** The private JWK (EC P-256 for ES256, OKP Ed25519 for EdDSA), without `kid`/`alg`/`use`. */
  jwk: JWK;
}

export interface SealingKeyRecord {
  kid: string;
  alg: 'A256GCM';
  createdAt: number;
  retiredAt?: number;
  /** The 32-byte AES-256 key, base64url (the `k` of an `oct` JWK). */
  k: string;
}

export interface KeySetFile {
  version: 1;
  signingKeys: SigningKeyRecord[];
  sealingKeys: SealingKeyRecord[];
}

/** Thrown for a key set that cannot be used. The message names what is wrong and never contains key material. */
export class KeySetError extends GatehouseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GH_KEY_SET_INVALID', message, options);
    this.name = 'KeySetError';
  }
}

/** Key ids appear in JWT headers and inside sealed envelopes (`v1.<kid>.…`), so they must not contain a dot. */
const kidSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ -');
const base64url = /^[A-Za-z0-9_-]+$/;
const epochMs = z.number().int().nonnegative();

const curveOf: Record<SigningAlgorithm, { kty: string; crv: string }> = {
  ES256: { kty: 'EC', crv: 'P-256' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
};

const signingKeySchema = z
  .object({
    kid: kidSchema,
    alg: z.enum(['ES256', 'EdDSA']),
    createdAt: epochMs,
    retiredAt: epochMs.optional(),
    jwk: z.record(z.string(), z.unknown()),
  })
  .strict()
  .superRefine((key, ctx) => {
    const expected = curveOf[key.alg];
    if (key.jwk['kty'] !== expected.kty || key.jwk['crv'] !== expected.crv) {
      ctx.addIssue({ code: 'custom', path: ['jwk'], message: `must be a ${expected.kty} ${expected.crv} key for ${key.alg}` });
      return;
    }
    if (typeof key.jwk['d'] !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['jwk'], message: 'must be a private key (the "d" member is missing)' });
      return;
    }
    try {
      // The public half is derived from `d`; a file whose `x`/`y` disagree would publish a JWKS nothing verifies with.
      const derived = createPublicKey(createPrivateKey({ key: key.jwk as JsonWebKeyInput['key'], format: 'jwk' }));
      const publicJwk = derived.export({ format: 'jwk' });
      if (publicJwk.x !== key.jwk['x'] || publicJwk.y !== key.jwk['y']) {
        ctx.addIssue({ code: 'custom', path: ['jwk'], message: 'public part (x/y) does not match the private key' });
      }
    } catch {
      // The crypto error text may quote coordinates; say only that the key does not load.
      ctx.addIssue({ code: 'custom', path: ['jwk'], message: 'is not a valid private key' });
    }
  });

const sealingKeySchema = z
  .object({
    kid: kidSchema,
    alg: z.literal('A256GCM'),
    createdAt: epochMs,
    retiredAt: epochMs.optional(),
    k: z.string(),
  })
  .strict()
  .superRefine((key, ctx) => {
    if (!base64url.test(key.k) || Buffer.from(key.k, 'base64url').length !== 32) {
      ctx.addIssue({ code: 'custom', path: ['k'], message: 'must be 32 bytes, base64url-encoded' });
    }
  });

function exactlyOneCurrent(keys: { kid: string; retiredAt?: number | undefined }[], ctx: z.RefinementCtx, path: string): void {
  const current = keys.filter((key) => key.retiredAt === undefined);
  if (current.length !== 1) {
    ctx.addIssue({ code: 'custom', path: [path], message: `must have exactly one current key (no retiredAt), found ${current.length}` });
  }
  const kids = new Set<string>();
  for (const key of keys) {
    if (kids.has(key.kid)) ctx.addIssue({ code: 'custom', path: [path], message: `key id "${key.kid}" is used twice` });
    kids.add(key.kid);
  }
}

export const keySetSchema = z
  .object({
    version: z.literal(1),
    signingKeys: z.array(signingKeySchema).min(1),
    sealingKeys: z.array(sealingKeySchema).min(1),
  })
  .strict()
  .superRefine((set, ctx) => {
    exactlyOneCurrent(set.signingKeys, ctx, 'signingKeys');
    exactlyOneCurrent(set.sealingKeys, ctx, 'sealingKeys');
  });

export interface GenerateKeyOptions {
  now: number;
  /** Source of key ids and sealing key bytes; the default is node:crypto. */
  random?: Random;
}

/**
 * A new key id: 12 random bytes, base64url, never starting with `-`. One id in 64 did, and an operator typing it
 * (`gatehouse keys revoke -Wb_nLmX…`) was told of an unknown option `-W`.
 */
export function newKeyId(random: Random): string {
  const token = random.token(12);
  return token.startsWith('-') ? `k${token.slice(1)}` : token;
}

/** A new private signing key. Key pairs come from node:crypto directly: they cannot be injected, and need not be. */
export function generateSigningKey(options: GenerateKeyOptions & { signingAlgorithm: SigningAlgorithm }): SigningKeyRecord {
  const random = options.random ?? cryptoRandom;
  const { privateKey } =
    options.signingAlgorithm === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('ed25519');
  return {
    kid: newKeyId(random),
    alg: options.signingAlgorithm,
    createdAt: options.now,
    jwk: privateKey.export({ format: 'jwk' }) as JWK,
  };
}

/** A new AES-256-GCM sealing key. */
export function generateSealingKey(options: GenerateKeyOptions): SealingKeyRecord {
  const random = options.random ?? cryptoRandom;
  return { kid: newKeyId(random), alg: 'A256GCM', createdAt: options.now, k: random.token(32) };
}

/** A fresh key set: one current signing key and one current sealing key. `gatehouse init` writes this to a file. */
export function generateKeySet(options: GenerateKeyOptions & { signingAlgorithm: SigningAlgorithm }): KeySetFile {
  return {
    version: 1,
    signingKeys: [generateSigningKey(options)],
    sealingKeys: [generateSealingKey(options)],
  };
}

/** JSON text of a key set, for the key file. It holds private keys: write it with mode 0600. */
export function serializeKeySet(keySet: KeySetFile): string {
  return `${JSON.stringify(keySet, null, 2)}\n`;
}

/**
 * Validates a key set, from a file's text or a store record. The error names each problem by path
 * (`signingKeys[0].jwk: is not a valid private key`) and never echoes a value, since the values are secrets.
 */
export function parseKeySet(input: unknown, source = 'key set'): KeySetFile {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch {
      // SyntaxError messages quote the text around the fault, which here is key material.
      throw new KeySetError(`${source}: not valid JSON`);
    }
  }
  const result = keySetSchema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`);
    throw new KeySetError(`${source}: ${problems.join('; ')}`);
  }
  return result.data as KeySetFile;
}

function formatPath(path: PropertyKey[]): string {
  let text = '';
  for (const part of path) text += typeof part === 'number' ? `[${part}]` : `${text ? '.' : ''}${String(part)}`;
  return text || '(root)';
}

/** The key new material uses: the one not retired. parseKeySet guarantees there is exactly one. */
export function currentKey<T extends { retiredAt?: number | undefined }>(keys: T[]): T {
  const current = keys.find((key) => key.retiredAt === undefined);
  if (!current) throw new KeySetError('key set has no current key');
  return current;
}
