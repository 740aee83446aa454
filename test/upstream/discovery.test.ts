import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startLocalIdentityProvider, type LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { UpstreamError } from '../../src/upstream/errors.ts';
import { createGatewaySide } from './support/fixture.ts';

describe('upstream discovery', () => {
  let idp: LocalIdentityProvider;
  before(async () => {
    idp = await startLocalIdentityProvider({ gateway: { clientId: 'gatehouse', redirectUris: ['http://127.0.0.1:8080/callback'] }, downstreamAudiences: [] });
  });
  after(async () => {
    await idp?.close();
  });

  it('is lazy, retried after a failure (not cached), then cached', async () => {
    let failuresLeft = 3; // the first call's three attempts all fail
    let discoveryCalls = 0;
    const flakyFetch: typeof fetch = async (input, init) => {
      if (String(input).includes('/.well-known/')) {
        discoveryCalls += 1;
        if (failuresLeft > 0) {
          failuresLeft -= 1;
          throw new TypeError('fetch failed');
        }
      }
      return fetch(input, init);
    };
    const gateway = await createGatewaySide({
      fetch: flakyFetch,
      upstream: { type: 'oidc', issuer: idp.issuer, clientId: 'gatehouse', clientAuth: { method: 'private_key_jwt', privateKeyFile: '/nonexistent' } },
    }).catch((error: unknown) => error);
    assert.ok(gateway instanceof Error, 'a missing key file fails at construction');

    const ok = await createGatewaySide({
      fetch: flakyFetch,
      upstream: { type: 'oidc', issuer: idp.issuer, clientId: 'gatehouse', clientAuth: { method: 'client_secret_post', clientSecret: 'x' } },
    });
    try {
      assert.equal(discoveryCalls, 0, 'nothing fetched at construction');
      await assert.rejects(ok.client.checkHealth(), (error: unknown) => error instanceof UpstreamError && error.code === 'temporarily_unavailable');
      assert.equal(discoveryCalls, 3);
      await ok.client.checkHealth();
      await ok.client.checkHealth();
      assert.equal(discoveryCalls, 4, 'a success is cached');
    } finally {
      await ok.store.close();
    }
  });

  for (const [field, value, named] of [
    ['authorization_endpoint', 'javascript:alert(document.cookie)//', "authorization_endpoint is not https: or http: (javascript:)"],
    ['token_endpoint', 'ftp://127.0.0.1:9/token', "token_endpoint is not https: or http: (ftp:)"],
    ['jwks_uri', 'not a url', "jwks_uri is not a URL"],
    ['token_endpoint', undefined, 'has no token_endpoint'],
  ] as const) {
    it(`fails discovery (503 to the user, the field named in the log) on a document whose ${field} is ${value ?? 'missing'}, not a 500 at sign-in`, async () => {
      const gateway = await createGatewaySide({
        upstream: { type: 'oidc', issuer: idp.issuer, clientId: 'gatehouse', clientAuth: { method: 'client_secret_post', clientSecret: 'x' } },
        fetch: async (input, init) => {
          const response = await fetch(input, init);
          if (!String(input).includes('/.well-known/openid-configuration')) return response;
          const metadata = (await response.json()) as Record<string, unknown>;
          return Response.json({ ...metadata, [field]: value });
        },
      });
      try {
        await assert.rejects(gateway.client.beginSignIn({ interactionId: 'x' }), { code: 'temporarily_unavailable' });
        const logged = gateway.logs.text();
        assert.ok(logged.includes(named), logged);
      } finally {
        await gateway.store.close();
      }
    });
  }

  it('refuses a discovery document whose issuer is not the configured one', async () => {
    const gateway = await createGatewaySide({
      upstream: { type: 'oidc', issuer: `${idp.issuer}/other`, clientId: 'gatehouse', clientAuth: { method: 'client_secret_post', clientSecret: 'x' } },
      fetch: async (input, init) => fetch(String(input).replace('/other/.well-known', '/.well-known'), init),
    });
    try {
      await assert.rejects(gateway.client.beginSignIn({ interactionId: 'x' }), { code: 'temporarily_unavailable' });
    } finally {
      await gateway.store.close();
    }
  });
});
