import { createHash } from 'node:crypto';
import { decodeProtectedHeader, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { dpopProofRefused, type ChallengeTarget } from '../errors/bearer-challenge.ts';
import { DPOP_PROOF_TYPE, DPOP_SIGNING_ALGS } from '../protocol/dpop.ts';
import { dpopProofRecord } from '../records/proxy.ts';
import type { Clock } from '../runtime/clock.ts';
import { createRecord } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';
import type { DpopNonces } from '../keys/dpop-nonces.ts';

/**
 * The resource server's check of a DPoP proof (RFC 9449 §4.3, §7.1), run on every request that presents a
 * DPoP-bound token. Everything but the replay check is local; the replay check is one `setIfAbsent` on the shared
 * store, so a proof replayed to another replica is refused too. Nothing is cached: each proof is single-use.
 */
export interface DpopProofRequest {
  /** The `DPoP` header (a repeated header is refused server-wide before this runs). */
  proof: string | string[] | undefined;
  method: string;
  /** The URL the client called, on the gateway's public URL (never the Host header), without query or fragment. */
  url: string;
  accessToken: string;
  /** The token's `cnf.jkt`. */
  jkt: string;
  /** The route requires nonces (`dpopNonce`): the origin's (src/keys/dpop-nonces.ts), which the token endpoint shares. */
  requireNonce?: boolean;
}

export type VerifyDpopProof = (request: DpopProofRequest, target: ChallengeTarget) => Promise<{ nextNonce?: string }>;

/** RFC 9449 §11.1: a short window limits what a proof captured before use is worth; `jti` covers the window. */
export const DPOP_PROOF_WINDOW_SECONDS = 60;
/** A proof is a few hundred bytes (an RSA-4096 `jwk` is under 1 KiB); this bounds the work a junk header costs. */
const MAX_PROOF_LENGTH = 8192;
const MAX_JTI_LENGTH = 256;
/** RFC 7517 / RFC 7518 §6: members only a private (or symmetric) key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
/** RFC 7638 §3.2: the members a thumbprint covers, per key type, in lexicographic order. */
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = { EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'], OKP: ['crv', 'kty', 'x'] };
/** Imported proof keys kept per thumbprint and algorithm: a client signs every proof with the same key. */
const MAX_CACHED_KEYS = 10_000;

/**
 * RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key, computed synchronously: jose's asynchronous one costs
 * about as much as the signature check on this path. Undefined for a key type or member this does not know.
 */
export function jwkThumbprint(jwk: JWK): string | undefined {
  const members = THUMBPRINT_MEMBERS[jwk.kty ?? ''];
  if (members === undefined) return undefined;
  const required: Record<string, string> = {};
  for (const member of members) {
    const value: unknown = jwk[member as keyof JWK];
    if (typeof value !== 'string') return undefined;
    required[member] = value;
  }
  return createHash('sha256').update(JSON.stringify(required)).digest('base64url');
}

export function createDpopProofVerifier(options: { store: Store; clock: Clock; nonces: DpopNonces; windowSeconds?: number }): VerifyDpopProof {
  const { store, clock, nonces, windowSeconds = DPOP_PROOF_WINDOW_SECONDS } = options;
  // Keyed by the thumbprint the token is bound to (which Gatehouse signed), so only keys bound to issued tokens enter.
  const keys = new Map<string, CryptoKey>();
  const proofKey = async (cacheKey: string, jwk: JWK, alg: string): Promise<CryptoKey> => {
    const cached = keys.get(cacheKey);
    if (cached !== undefined) return cached;
    const key = (await importJWK(jwk, alg)) as CryptoKey;
    if (keys.size >= MAX_CACHED_KEYS) keys.delete(keys.keys().next().value as string);
    keys.set(cacheKey, key);
    return key;
  };

  return async function verifyDpopProof(request, target) {
    const refuse = (description: string) => dpopProofRefused(target, 'invalid_dpop_proof', description);
    const { proof } = request;
    if (typeof proof !== 'string' || proof === '') throw refuse('A DPoP-bound access token needs a DPoP proof in the `DPoP` header.');
    if (proof.length > MAX_PROOF_LENGTH) throw refuse('The DPoP proof is too large.');
    const { jwk, alg } = checkProofHeader(proof, refuse);
    // The key must be the one the token is bound to (§4.3 step 12): checked first, as it is cheap and decides which
    // imported key may be reused.
    const thumbprint = jwkThumbprint(jwk);
    if (thumbprint !== request.jkt) throw refuse('The DPoP proof is signed with a key other than the one the token is bound to.');
    let payload: JWTPayload;
    try {
      const key = await proofKey(`${thumbprint}.${alg}`, jwk, alg);
      ({ payload } = await jwtVerify(proof, key, { algorithms: [alg], typ: DPOP_PROOF_TYPE, currentDate: new Date(clock.now()) }));
    } catch {
      throw refuse('The DPoP proof is malformed or its signature does not verify.');
    }
    const { jti, htm, htu, iat, ath } = payload;
    if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) throw refuse('The DPoP proof needs a `jti`.');
    if (htm !== request.method) throw refuse('The DPoP proof was made for another HTTP method (`htm`).');
    const expectedUrl = normalisedHtu(request.url);
    if (typeof htu !== 'string' || expectedUrl === undefined || normalisedHtu(htu) !== expectedUrl) throw refuse('The DPoP proof was made for another URL (`htu`).');
    const now = clock.now() / 1000;
    if (typeof iat !== 'number' || Math.abs(now - iat) > windowSeconds) throw refuse('The DPoP proof is too old or from the future (`iat`).');
    if (ath !== accessTokenHash(request.accessToken)) throw refuse('The DPoP proof was made for another access token (`ath`).');
    const nextNonce = request.requireNonce === true ? checkNonce(nonces, payload.nonce, target) : undefined;
    // Last, once the proof is otherwise good: only a proof that would have been accepted takes a place in the cache.
    const first = await createRecord(store, dpopProofRecord, replayKey(request.jkt, jti), { seenAt: clock.now() }, {
      ttlSeconds: Math.max(1, Math.ceil(iat + windowSeconds - now) + 1),
    });
    if (!first) throw refuse('The DPoP proof was already used (`jti`).');
    return nextNonce === undefined ? {} : { nextNonce };
  };
}

/**
 * RFC 9449 §4.3 steps 4–7 on the header alone, before any signature work: `typ`, an asymmetric `alg` (never `none` or
 * HS*), and a `jwk` that is a public key — a proof carrying a private key proves nothing (anyone who saw it can sign).
 */
function checkProofHeader(proof: string, refuse: (description: string) => Error): { jwk: JWK; alg: string } {
  let header;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw refuse('The DPoP proof is not a JWT.');
  }
  if (header.typ !== DPOP_PROOF_TYPE) throw refuse('The DPoP proof must have `typ: dpop+jwt`.');
  if (!(DPOP_SIGNING_ALGS as readonly string[]).includes(header.alg ?? '')) throw refuse(`The DPoP proof must be signed with one of: ${DPOP_SIGNING_ALGS.join(' ')}.`);
  const jwk = header.jwk;
  if (typeof jwk !== 'object' || jwk === null) throw refuse('The DPoP proof must carry its public key in `jwk`.');
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) throw refuse('The DPoP proof `jwk` must be a public key.');
  return { jwk, alg: header.alg as string };
}

/** RFC 9449 §9: with nonces required, a proof without the current nonce is answered with a fresh one to retry with. */
function checkNonce(nonces: DpopNonces, nonce: unknown, target: ChallengeTarget): string | undefined {
  if (typeof nonce !== 'string' || !nonces.isValid(nonce)) {
    const description = nonce === undefined ? 'This route requires a DPoP nonce.' : 'The DPoP nonce is stale or unknown.';
    throw dpopProofRefused(target, 'use_dpop_nonce', description, nonces.current());
  }
  const current = nonces.current();
  // §8.2: a new nonce may come with any response; the client switches before the one it used goes stale.
  return nonce === current ? undefined : current;
}

/** RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the access token's ASCII. */
export const accessTokenHash = (token: string): string => createHash('sha256').update(token, 'ascii').digest('base64url');

const replayKey = (jkt: string, jti: string): string => createHash('sha256').update(`${jkt}\n${jti}`).digest('base64url');

/**
 * RFC 9449 §4.3 step 9: `htu` compared without query and fragment, after RFC 3986 §6.2.2–6.2.3 normalisation (the
 * WHATWG parser lowercases scheme and host, drops a default port, resolves dot segments); anything but an absolute
 * http(s) URL without credentials matches nothing.
 */
function normalisedHtu(value: string): string | undefined {
  const url = URL.parse(value);
  if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '') return undefined;
  return url.origin + url.pathname;
}
