import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CompactJWSHeaderParameters, type FlattenedJWSInput } from 'jose';
import { trustedIssuerKeys } from '../../src/authorization/grants/trusted-issuer-keys.ts';
import { verifyJwtAssertion } from '../../src/authorization/grants/verify-assertion.ts';
import { TokenEndpointError } from '../../src/errors/token-endpoint-error.ts';
import { UpstreamError } from '../../src/upstream/errors.ts';
import { upstreamJwks, verifyIdToken } from '../../src/upstream/id-token.ts';
import { cappedFetch, PROVIDER_RESPONSE_LIMIT_BYTES } from '../../src/runtime/capped-fetch.ts';
import { ManualClock } from '../../src/runtime/clock.ts';

/**
 * The keys of a trusted issuer found through its discovery document. The jwt-bearer grant needs no client credentials
 * for a workload token, and the keys are looked up before the signature is checked: anyone can make Gatehouse look.
 */
const ISSUER = 'https://idp.example';
const header: CompactJWSHeaderParameters = { alg: 'ES256', kid: 'k1' };
const token = { payload: '', signature: '' } as FlattenedJWSInput;

function countingFetch(answer: () => Promise<Response>) {
  const urls: string[] = [];
  const fetch = (async (input: string | URL | Request) => {
    urls.push(String(input));
    return answer();
  }) as typeof globalThis.fetch;
  return { fetch, urls };
}

describe('trusted issuer keys by discovery', () => {
  it('asks an issuer whose discovery fails at most once per cooldown, however many requests name it', async () => {
    const clock = new ManualClock();
    const { fetch, urls } = countingFetch(async () => new Response('down', { status: 503 }));
    const keys = trustedIssuerKeys({ fetch, clock })({ issuer: ISSUER });
    const lookUp = async () => keys(header, token);
    await Promise.all([1, 2, 3].map(() => assert.rejects(lookUp)));
    await assert.rejects(lookUp);
    assert.equal(urls.length, 2, 'OpenID Connect Discovery, then RFC 8414: once each');
    clock.advance(31_000);
    await assert.rejects(lookUp);
    assert.equal(urls.length, 4, 'asked again after the cooldown');
  });

  it('refetches the JWKS for an unknown kid at most once per cooldown, not once per forged kid', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', kid: 'real' }] };
    const { fetch, urls } = countingFetch(async () => Response.json(jwks));
    const keys = trustedIssuerKeys({ fetch })({ issuer: ISSUER, jwksUri: `${ISSUER}/jwks` });
    await keys({ alg: 'ES256', kid: 'real' }, token);
    for (const kid of ['forged-1', 'forged-2', 'forged-3', 'forged-4']) await assert.rejects(async () => keys({ alg: 'ES256', kid }, token));
    assert.ok(urls.length <= 2, `${urls.length} JWKS fetches`);
  });
});

describe("an issuer's key set out of reach is its outage, not a bad assertion", () => {
  // jose answers a non-200 or non-JSON key set with its plain JOSEError, which was read as "the signature does not
  // verify": 400 invalid_grant, which tells the client its assertion is bad and not worth retrying.
  const clock = new ManualClock();
  const expected = { issuer: ISSUER, audience: 'https://gatehouse.example/token', requiredClaims: ['sub'] };
  let assertion: string;
  let jwks: { keys: unknown[] };

  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    jwks = { keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', kid: 'k1' }] };
    assertion = await new SignJWT({ sub: 'workload' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience(expected.audience)
      .setIssuedAt(Math.floor(clock.now() / 1000))
      .setExpirationTime(Math.floor(clock.now() / 1000) + 300)
      .sign(privateKey);
  });

  for (const [name, answer] of [
    ['answers HTTP 500', async () => new Response('down', { status: 500 })],
    ['answers something that is not JSON', async () => new Response('{not json', { status: 200, headers: { 'content-type': 'application/json' } })],
    ['answers JSON that is no key set', async () => Response.json({ keys: 'none' })],
    ['cannot be reached', async () => Promise.reject(new TypeError('fetch failed'))],
  ] as const) {
    it(`answers 503 temporarily_unavailable when the key set ${name}`, async () => {
      const { fetch } = countingFetch(answer);
      const keys = trustedIssuerKeys({ fetch, clock })({ issuer: ISSUER, jwksUri: `${ISSUER}/jwks` });
      const error = await verifyJwtAssertion(assertion, keys, clock, expected).then(
        () => assert.fail('verified'),
        (failure: unknown) => failure,
      );
      assert.ok(error instanceof TokenEndpointError);
      assert.deepEqual([error.status, error.error], [503, 'temporarily_unavailable']);
    });
  }

  it('answers 503 when the key set is larger than a provider answer may be (read through the capped fetch)', async () => {
    const huge = () => new Response(new ReadableStream({ pull: (controller) => controller.enqueue(new Uint8Array(64 * 1024).fill(0x20)) }));
    const { fetch } = countingFetch(async () => huge());
    const keys = trustedIssuerKeys({ fetch: cappedFetch(fetch, PROVIDER_RESPONSE_LIMIT_BYTES), clock })({ issuer: ISSUER, jwksUri: `${ISSUER}/jwks` });
    const error = await verifyJwtAssertion(assertion, keys, clock, expected).then(
      () => assert.fail('verified'),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof TokenEndpointError);
    assert.deepEqual([error.status, error.error], [503, 'temporarily_unavailable']);
  });

  it('still answers invalid_grant for a signature the key set does not verify', async () => {
    const { fetch } = countingFetch(async () => Response.json(jwks));
    const keys = trustedIssuerKeys({ fetch, clock })({ issuer: ISSUER, jwksUri: `${ISSUER}/jwks` });
    const forged = `${assertion.slice(0, assertion.lastIndexOf('.'))}.${Buffer.alloc(64, 1).toString('base64url')}`;
    await assert.rejects(verifyJwtAssertion(forged, keys, clock, expected), (error: unknown) => error instanceof TokenEndpointError && error.error === 'invalid_grant');
    assert.equal(await verifyJwtAssertion(assertion, keys, clock, expected).then((payload) => payload.sub), 'workload');
  });

  it('the upstream sign-in reads the same failure as the identity provider being unavailable', async () => {
    const { fetch } = countingFetch(async () => new Response('down', { status: 502 }));
    await assert.rejects(
      verifyIdToken({ idToken: assertion, jwks: upstreamJwks(`${ISSUER}/jwks`, fetch, 1000), clientId: 'gatehouse', expectedNonce: 'n', expectedIssuer: () => ISSUER, clock }),
      (error: unknown) => error instanceof UpstreamError && error.code === 'temporarily_unavailable',
    );
  });
});
