import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { accessTokenHash } from '../../src/proxy/dpop-proof.ts';

/**
 * A hand-driven DPoP client (RFC 9449 §4): one key pair, and proofs whose every field a test can replace, so each
 * check of the resource server is exercised by a proof that differs from a valid one in exactly that field.
 */
export interface DpopKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to this key. */
  jkt: string;
}

export async function createDpopKey(alg = 'ES256'): Promise<DpopKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk, 'sha256') };
}

export interface ProofFields {
  htm: string;
  htu: string;
  /** The access token the proof goes with (`ath`); omitted at the token endpoint. */
  accessToken?: string;
  /** Epoch seconds; defaults to now. */
  iat?: number;
  jti?: string;
  nonce?: string;
  /** Replaces any claim (e.g. a wrong `ath`). */
  claims?: Record<string, unknown>;
  /** Replaces any header member (e.g. a private `jwk`, another `typ`). */
  header?: Record<string, unknown>;
}

export async function dpopProof(key: DpopKey, fields: ProofFields): Promise<string> {
  const claims: Record<string, unknown> = { htm: fields.htm, htu: fields.htu, jti: fields.jti ?? randomUUID(), iat: fields.iat ?? Math.floor(Date.now() / 1000) };
  if (fields.accessToken !== undefined) claims.ath = accessTokenHash(fields.accessToken);
  if (fields.nonce !== undefined) claims.nonce = fields.nonce;
  return new SignJWT({ ...claims, ...fields.claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk, ...fields.header })
    .sign(key.privateKey);
}

/** An unsigned (`alg: none`) or otherwise hand-assembled compact JWT. */
export function unsignedJwt(header: Record<string, unknown>, payload: Record<string, unknown>, signature = ''): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part(header)}.${part(payload)}.${signature}`;
}
