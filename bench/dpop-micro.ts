import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { RevokedGrantsCache } from '../src/grants/revoked-grants.ts';
import { keyringFromKeySet } from '../src/keys/key-set-keyring.ts';
import { generateKeySet } from '../src/keys/key-set.ts';
import { createDpopNonces } from '../src/keys/dpop-nonces.ts';
import { accessTokenHash, createDpopProofVerifier } from '../src/proxy/dpop-proof.ts';
import { createAccessTokenVerifier, type VerifyTarget } from '../src/proxy/verify-access-token.ts';
import { systemClock } from '../src/runtime/clock.ts';
import { createSqliteStore } from '../src/store/sqlite-store.ts';

/**
 * What DPoP adds to the gateway's credential check, in this process: the same verifier the routes use, once with a
 * Bearer token and once with a DPoP-bound token and a new proof per request (ES256 signature, thumbprint, `ath`, and
 * the `jti` written to an in-memory SQLite store). Proofs are made before the clock starts, as a client makes them.
 * With a Redis store, add one network round trip to the DPoP figure.
 */
export async function measureDpopVerification(scale = 1): Promise<Array<{ name: string; microsPerOp: number; iterations: number }>> {
  const iterations = Math.max(50, Math.floor(2_000 * scale));
  const issuer = 'http://gateway.bench';
  const url = `${issuer}/mcp`;
  const keyring = keyringFromKeySet(generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' }));
  const store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
  const revokedGrants: RevokedGrantsCache = { isRevoked: () => false, isCurrent: () => true, start: async () => {}, resync: async () => {}, onRevoked: () => () => {}, onStale: () => () => {}, stop: async () => {} };
  const verify = createAccessTokenVerifier({
    keyring,
    issuer,
    clock: systemClock,
    revokedGrants,
    verifyDpopProof: createDpopProofVerifier({ store, clock: systemClock, nonces: createDpopNonces({ keyring, clock: systemClock }) }),
  });
  const target: VerifyTarget = { resource: url, requiredScopes: ['mcp:tools'], resourceMetadataUrl: `${issuer}/.well-known/oauth-protected-resource/mcp`, scope: 'mcp:tools', dpop: 'optional', dpopNonce: false };
  const client = await generateKeyPair('ES256');
  const publicJwk = await exportJWK(client.publicKey);
  const signing = keyring.currentSigningKey();
  const token = (cnf?: { jkt: string }) =>
    new SignJWT({ client_id: 'bench', scope: 'mcp:tools', gid: 'bench-grant', ...(cnf ? { cnf } : {}) })
      .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience(url)
      .setSubject('bench/user')
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(signing.privateKey);
  const bearer = await token();
  const bound = await token({ jkt: await calculateJwkThumbprint(publicJwk, 'sha256') });
  const proofs = await Promise.all(
    Array.from({ length: iterations }, () =>
      new SignJWT({ htm: 'POST', htu: url, jti: randomUUID(), ath: accessTokenHash(bound) })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: publicJwk })
        .setIssuedAt()
        .sign(client.privateKey),
    ),
  );
  const time = async (run: (index: number) => Promise<unknown>) => {
    await run(0);
    const started = process.hrtime.bigint();
    for (let index = 1; index < iterations; index++) await run(index);
    return Number(process.hrtime.bigint() - started) / 1000 / (iterations - 1);
  };
  try {
    const bearerMicros = await time(() => verify({ authorization: `Bearer ${bearer}`, rawQuery: '', method: 'POST', url }, target));
    const dpopMicros = await time((index) => verify({ authorization: `DPoP ${bound}`, dpop: proofs[index], rawQuery: '', method: 'POST', url }, target));
    return [
      { name: 'credential check, Bearer token (verifyAccessToken, token signature cached)', microsPerOp: bearerMicros, iterations: iterations - 1 },
      { name: 'credential check, DPoP-bound token + new proof (proof ES256 verified, jti set-if-absent in in-memory SQLite)', microsPerOp: dpopMicros, iterations: iterations - 1 },
    ];
  } finally {
    await store.close();
  }
}
