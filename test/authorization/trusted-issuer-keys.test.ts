import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exportJWK, generateKeyPair, type CompactJWSHeaderParameters, type FlattenedJWSInput } from 'jose';
import { trustedIssuerKeys } from '../../src/authorization/grants/trusted-issuer-keys.ts';
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
