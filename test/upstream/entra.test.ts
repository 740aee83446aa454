import { claimMappingFor } from '../../src/upstream/claim-mapping.ts';
import { identityFromClaims } from '../../src/upstream/identity-claims.ts';
import assert from 'node:assert/strict';
import { cappedFetch, PROVIDER_RESPONSE_LIMIT_BYTES } from '../../src/runtime/capped-fetch.ts';
import { describe, it } from 'node:test';
import { createEntraProfile, normalizeAuthority, qualifyScopes } from '../../src/upstream/entra.ts';
import { UpstreamError } from '../../src/upstream/errors.ts';
import { createGatewaySide } from './support/fixture.ts';
import { createFakeEntra } from './support/fake-entra.ts';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const OTHER_TENANT = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';
const OID = '00000000-0000-0000-0000-00000000a11e';
const GLOBAL = 'https://login.microsoftonline.com';

const profile = (entra: { tenantId: string; authority?: string; allowedTenants?: string[] }) =>
  createEntraProfile({ authority: GLOBAL, allowedTenants: [], ...entra });

describe('Entra issuer validation', () => {
  it('single tenant: accepts only the home tenant, v2 issuer by default and the v1 STS issuer when ver is 1.0', () => {
    const entra = profile({ tenantId: TENANT });
    entra.checkDiscoveredIssuer(`${GLOBAL}/${TENANT}/v2.0`);
    assert.equal(entra.expectedIssuer({ tid: TENANT, ver: '2.0' }), `${GLOBAL}/${TENANT}/v2.0`);
    assert.equal(entra.expectedIssuer({ tid: TENANT, ver: '1.0' }), `https://sts.windows.net/${TENANT}/`);
    assert.throws(() => entra.expectedIssuer({ tid: OTHER_TENANT }), (error: unknown) => error instanceof UpstreamError && error.code === 'access_denied');
    assert.throws(() => entra.expectedIssuer({}), /tenant id/);
  });

  it('single tenant configured by domain learns the tenant id from discovery and refuses another tenant\'s document', () => {
    const entra = profile({ tenantId: 'contoso.onmicrosoft.com' });
    entra.checkDiscoveredIssuer(`${GLOBAL}/${TENANT}/v2.0`);
    assert.equal(entra.expectedIssuer({ tid: TENANT }), `${GLOBAL}/${TENANT}/v2.0`);
    assert.throws(() => profile({ tenantId: TENANT }).checkDiscoveredIssuer(`${GLOBAL}/${OTHER_TENANT}/v2.0`), /another tenant/);
    assert.throws(() => profile({ tenantId: TENANT }).checkDiscoveredIssuer(`${GLOBAL}/{tenantid}/v2.0`), /no tenant id/);
  });

  it('multi-tenant: rebuilds the issuer from the token\'s tid and enforces the tenant allow-list', () => {
    const entra = profile({ tenantId: 'organizations', allowedTenants: [TENANT] });
    assert.throws(() => entra.checkDiscoveredIssuer(`${GLOBAL}/${TENANT}/v2.0`), /\{tenantid\}/);
    entra.checkDiscoveredIssuer(`${GLOBAL}/{tenantid}/v2.0`);
    assert.equal(entra.expectedIssuer({ tid: TENANT }), `${GLOBAL}/${TENANT}/v2.0`);
    assert.throws(() => entra.expectedIssuer({ tid: OTHER_TENANT }), /may not sign in/);

    // Every tenant only when the list says so: an empty one admitted every tenant's users, the reverse of how it reads.
    assert.throws(() => profile({ tenantId: 'organizations' }), /allowedTenants: required with tenantId: organizations/);
    assert.throws(() => profile({ tenantId: 'common', allowedTenants: [] }), /allowedTenants: required with tenantId: common/);
    const open = profile({ tenantId: 'organizations', allowedTenants: ['*'] });
    open.checkDiscoveredIssuer(`${GLOBAL}/{tenantid}/v2.0`);
    assert.equal(open.expectedIssuer({ tid: OTHER_TENANT }), `${GLOBAL}/${OTHER_TENANT}/v2.0`);
    assert.throws(() => open.expectedIssuer({ tid: '9188040d-6c67-4c5b-b112-36a304b66dad' }), /may not sign in/, 'personal accounts are not an organization');
  });

  it('sovereign cloud: endpoints and issuers follow the authority host', () => {
    const entra = profile({ tenantId: TENANT, authority: 'https://login.microsoftonline.us/' });
    assert.equal(entra.discoveryUrl.href, `https://login.microsoftonline.us/${TENANT}/v2.0/.well-known/openid-configuration`);
    entra.checkDiscoveredIssuer(`https://login.microsoftonline.us/${TENANT}/v2.0`);
    assert.equal(entra.expectedIssuer({ tid: TENANT }), `https://login.microsoftonline.us/${TENANT}/v2.0`);
    assert.equal(entra.expectedIssuer({ tid: TENANT, ver: '1.0' }), `https://login.microsoftonline.us/${TENANT}/`);
    assert.throws(() => normalizeAuthority('http://login.example.com'), /https/);
  });

  it('maps identity to tid/oid with groups and app roles', () => {
    const identity = identityFromClaims(
      { iss: 'x', tid: TENANT.toUpperCase(), oid: OID, name: 'Adele', preferred_username: 'adele@contoso.com', groups: ['g1'], roles: ['Admin', 'g1'] },
      claimMappingFor({ type: 'entra', groupsClaim: 'groups', claims: {} }),
    );
    assert.equal(identity.subject, `${TENANT}/${OID}`);
    assert.equal(identity.email, 'adele@contoso.com');
    assert.deepEqual(identity.groups, ['g1', 'Admin']);
    assert.deepEqual(qualifyScopes('https://graph.microsoft.com', ['User.Read', 'https://graph.microsoft.com/Mail.Read']), [
      'https://graph.microsoft.com/User.Read',
      'https://graph.microsoft.com/Mail.Read',
    ]);
  });
});

describe('Entra sign-in and on-behalf-of through the upstream client (local discovery document)', () => {
  async function setUp(tenantId: string, discoveryIssuer: string, allowedTenants: string[] = []) {
    const fake = await createFakeEntra({ authority: GLOBAL, tenant: tenantId, discoveryIssuer, clientId: 'app-id' });
    const gateway = await createGatewaySide({
      fetch: fake.fetch,
      upstream: {
        type: 'entra',
        entra: { tenantId, authority: GLOBAL, allowedTenants },
        clientId: 'app-id',
        clientAuth: { method: 'client_secret_post', clientSecret: 'fallback-secret' },
        scopes: ['openid', 'profile', 'offline_access', 'api://app-id/.default'],
      },
    });
    return { fake, gateway };
  }

  it('asks the IdP for a fresh login when told to (prompt=login, max_age), and for nothing of the kind otherwise', async () => {
    const { gateway } = await setUp('organizations', `${GLOBAL}/{tenantid}/v2.0`, [TENANT]);
    try {
      const asked = new URL((await gateway.client.beginSignIn({ interactionId: 'r1', reauthenticate: { prompt: 'login', maxAge: 60 } })).authorizationUrl).searchParams;
      assert.equal(asked.get('prompt'), 'login');
      assert.equal(asked.get('max_age'), '60');
      const plain = new URL((await gateway.client.beginSignIn({ interactionId: 'r2' })).authorizationUrl).searchParams;
      assert.equal(plain.has('prompt'), false);
      assert.equal(plain.has('max_age'), false);
    } finally {
      await gateway.store.close();
    }
  });

  it('refuses a sign-in the IdP answered from its own session when a fresh login was asked for (auth_time)', async () => {
    const { fake, gateway } = await setUp('organizations', `${GLOBAL}/{tenantid}/v2.0`, [TENANT]);
    try {
      const now = Math.floor(Date.now() / 1000);
      const attempt = async (reauthenticate: { prompt?: 'login'; maxAge?: number }, authTime: number | undefined) => {
        fake.idTokenClaims = () => ({ iss: `${GLOBAL}/${TENANT}/v2.0`, tid: TENANT, oid: OID, ver: '2.0', name: 'Adele', sub: 'pairwise', ...(authTime === undefined ? {} : { auth_time: authTime }) });
        const started = await gateway.client.beginSignIn({ interactionId: `fresh-${Math.random()}`, reauthenticate });
        fake.rememberNonce(started.authorizationUrl);
        const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
        return gateway.client.completeSignIn({ callbackUrl: new URL(`http://127.0.0.1:8080/callback?code=c1&state=${state}`), stateCookie: started.stateCookie });
      };
      await assert.rejects(attempt({ prompt: 'login' }, now - 3600), { code: 'access_denied' });
      // Entra's ID tokens carry no auth_time unless configured: nothing to check, believed.
      assert.equal((await attempt({ prompt: 'login' }, undefined)).identity.subject, `${TENANT}/${OID}`);
      await assert.rejects(attempt({ maxAge: 60 }, now - 600), { code: 'access_denied' });
      assert.equal((await attempt({ prompt: 'login' }, now)).identity.subject, `${TENANT}/${OID}`);
      assert.equal((await attempt({ maxAge: 600 }, now - 300)).identity.subject, `${TENANT}/${OID}`);
      assert.equal((await attempt({}, now - 86_400)).identity.subject, `${TENANT}/${OID}`, 'nothing asked, nothing checked');
    } finally {
      await gateway.store.close();
    }
  });

  it('holds any other OpenID provider to auth_time when max_age was asked (OIDC Core §2); Entra is believed without it', async () => {
    const fake = await createFakeEntra({ authority: GLOBAL, tenant: TENANT, discoveryIssuer: `${GLOBAL}/${TENANT}/v2.0`, clientId: 'app-id' });
    const upstream = { clientId: 'app-id', clientAuth: { method: 'client_secret_post' as const, clientSecret: 'fallback-secret' }, scopes: ['openid', 'profile', 'offline_access'] };
    const generic = await createGatewaySide({ fetch: fake.fetch, upstream: { ...upstream, type: 'oidc' as const, issuer: `${GLOBAL}/${TENANT}/v2.0` } });
    const entra = await createGatewaySide({ fetch: fake.fetch, upstream: { ...upstream, type: 'entra' as const, entra: { tenantId: TENANT, authority: GLOBAL, allowedTenants: [] } } });
    try {
      fake.idTokenClaims = () => ({ iss: `${GLOBAL}/${TENANT}/v2.0`, tid: TENANT, oid: OID, ver: '2.0', name: 'Adele', sub: 'pairwise' });
      const attempt = async (side: typeof generic, reauthenticate: { prompt?: 'login'; maxAge?: number }) => {
        const started = await side.client.beginSignIn({ interactionId: `auth-time-${Math.random()}`, reauthenticate });
        fake.rememberNonce(started.authorizationUrl);
        const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
        return side.client.completeSignIn({ callbackUrl: new URL(`http://127.0.0.1:8080/callback?code=c1&state=${state}`), stateCookie: started.stateCookie });
      };
      await assert.rejects(attempt(generic, { maxAge: 600 }), (error: unknown) => {
        assert.ok(error instanceof UpstreamError);
        assert.equal(error.code, 'access_denied');
        assert.match(error.message, /did not say when the user signed in/);
        return true;
      });
      assert.equal((await attempt(generic, { prompt: 'login' })).identity.subject.endsWith('#pairwise'), true, 'prompt=login asks for no auth_time');
      assert.equal((await attempt(entra, { maxAge: 600 })).identity.subject, `${TENANT}/${OID}`);
    } finally {
      await generic.store.close();
      await entra.store.close();
    }
  });

  it('multi-tenant sign-in validates the per-tenant issuer, and never sends `resource`', async () => {
    const { fake, gateway } = await setUp('organizations', `${GLOBAL}/{tenantid}/v2.0`, [TENANT]);
    try {
      fake.idTokenClaims = () => ({ iss: `${GLOBAL}/${TENANT}/v2.0`, tid: TENANT, oid: OID, ver: '2.0', name: 'Adele', sub: 'pairwise' });
      const started = await gateway.client.beginSignIn({ interactionId: 'i1' });
      assert.equal(new URL(started.authorizationUrl).origin + new URL(started.authorizationUrl).pathname, `${GLOBAL}/organizations/oauth2/v2.0/authorize`);
      fake.rememberNonce(started.authorizationUrl);
      const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
      const callbackUrl = new URL(`http://127.0.0.1:8080/callback?code=c1&state=${state}`);
      const completed = await gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie });
      assert.equal(completed.identity.subject, `${TENANT}/${OID}`);
      assert.equal(completed.identity.tenantId, TENANT);

      await gateway.client.exchangeForDownstream({ subjectToken: completed.tokens.accessToken, audience: 'https://graph.microsoft.com', scopes: ['User.Read'], grant: 'on-behalf-of' });
      await gateway.client.refresh(completed.tokens.refreshToken ?? '');
      const obo = fake.tokenRequests.find((body) => body.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer');
      assert.equal(obo?.get('requested_token_use'), 'on_behalf_of');
      assert.equal(obo?.get('scope'), 'https://graph.microsoft.com/User.Read');
      assert.equal(obo?.get('assertion'), completed.tokens.accessToken);
      for (const request of gateway.requests) {
        assert.equal(new URL(request.url).searchParams.has('resource'), false, request.url);
        assert.equal(new URLSearchParams(request.body).has('resource'), false, request.url);
      }
      assert.equal(new URL(started.authorizationUrl).searchParams.has('resource'), false);
    } finally {
      await gateway.store.close();
    }
  });

  it('refuses an ID token from a tenant outside the allow-list, and one whose iss does not match its tid', async () => {
    const { fake, gateway } = await setUp('organizations', `${GLOBAL}/{tenantid}/v2.0`, [TENANT]);
    try {
      for (const claims of [
        { iss: `${GLOBAL}/${OTHER_TENANT}/v2.0`, tid: OTHER_TENANT, oid: OID, sub: 's' },
        { iss: `${GLOBAL}/${OTHER_TENANT}/v2.0`, tid: TENANT, oid: OID, sub: 's' },
      ]) {
        fake.idTokenClaims = () => claims;
        const started = await gateway.client.beginSignIn({ interactionId: 'i2' });
        fake.rememberNonce(started.authorizationUrl);
        const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
        await assert.rejects(
          gateway.client.completeSignIn({ callbackUrl: new URL(`http://127.0.0.1:8080/callback?code=c&state=${state}`), stateCookie: started.stateCookie }),
          (error: unknown) => error instanceof UpstreamError && error.code === 'access_denied' && error.interactionId === 'i2',
        );
      }
    } finally {
      await gateway.store.close();
    }
  });

  it("reads a token endpoint that answers no OAuth response (HTML, non-JSON, no access token) as the IdP's failure: retry, counted", async () => {
    // It was shown to the user as a refused sign-in (403 access_denied) and never reached the metric operators alert on.
    const errors: Array<{ operation: string; error: string }> = [];
    const fake = await createFakeEntra({ authority: GLOBAL, tenant: TENANT, discoveryIssuer: `${GLOBAL}/${TENANT}/v2.0`, clientId: 'app-id' });
    const gateway = await createGatewaySide({
      fetch: cappedFetch(fake.fetch, PROVIDER_RESPONSE_LIMIT_BYTES),
      metrics: { upstreamError: (labels) => errors.push(labels) },
      upstream: {
        type: 'entra',
        entra: { tenantId: TENANT, authority: GLOBAL, allowedTenants: [] },
        clientId: 'app-id',
        clientAuth: { method: 'client_secret_post', clientSecret: 'fallback-secret' },
        scopes: ['openid', 'profile', 'offline_access', 'api://app-id/.default'],
      },
    });
    try {
      fake.idTokenClaims = () => ({ iss: `${GLOBAL}/${TENANT}/v2.0`, tid: TENANT, oid: OID, sub: 's' });
      for (const answer of [
        () => new Response('<html><body>Request blocked</body></html>', { status: 400, headers: { 'content-type': 'text/html' } }),
        () => new Response('not json at all', { status: 200, headers: { 'content-type': 'application/json' } }),
        () => Response.json({ token_type: 'Bearer' }),
        // Over the size any provider answer has (the capped fetch the gateway's context carries).
        () => new Response(new ReadableStream({ pull: (controller) => controller.enqueue(new Uint8Array(64 * 1024).fill(0x20)) }), { headers: { 'content-type': 'application/json' } }),
      ]) {
        const started = await gateway.client.beginSignIn({ interactionId: 'waf' });
        fake.rememberNonce(started.authorizationUrl);
        const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
        fake.nextResponse = answer;
        await assert.rejects(
          gateway.client.completeSignIn({ callbackUrl: new URL(`http://127.0.0.1:8080/callback?code=c&state=${state}`), stateCookie: started.stateCookie }),
          (error: unknown) => error instanceof UpstreamError && error.code === 'temporarily_unavailable' && error.interactionId === 'waf',
        );
      }
      assert.equal(errors.filter((labels) => labels.operation === 'sign-in').length, 4, JSON.stringify(errors));
    } finally {
      await gateway.store.close();
    }
  });

  it('refuses an ID token not signed by the published keys', async () => {
    const { fake, gateway } = await setUp(TENANT, `${GLOBAL}/${TENANT}/v2.0`);
    try {
      fake.forgeSignature = true;
      fake.idTokenClaims = () => ({ iss: `${GLOBAL}/${TENANT}/v2.0`, tid: TENANT, oid: OID, sub: 's' });
      const started = await gateway.client.beginSignIn({ interactionId: 'forged' });
      fake.rememberNonce(started.authorizationUrl);
      const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
      await assert.rejects(
        gateway.client.completeSignIn({ callbackUrl: new URL(`http://127.0.0.1:8080/callback?code=c&state=${state}`), stateCookie: started.stateCookie }),
        (error: unknown) => error instanceof UpstreamError && error.code === 'access_denied' && error.interactionId === 'forged',
      );
      // The operator is told which check failed (every refusal used to log the same line).
      const line = gateway.logs.lines().find((entry) => entry.msg === 'upstream identity rejected (ID token or userinfo)');
      assert.match(String(line?.failure), /JWSSignatureVerificationFailed/, JSON.stringify(line));
    } finally {
      await gateway.store.close();
    }
  });

  it('maps AADSTS65001 and a claims challenge on OBO to interaction_required, keeping the codes', async () => {
    const { fake, gateway } = await setUp(TENANT, `${GLOBAL}/${TENANT}/v2.0`);
    try {
      fake.nextError = { error: 'invalid_grant', error_description: 'AADSTS65001: The user or administrator has not consented.', error_codes: [65001] };
      await assert.rejects(
        gateway.client.exchangeForDownstream({ subjectToken: 'user-at', audience: 'https://graph.microsoft.com', scopes: ['User.Read'], grant: 'on-behalf-of' }),
        (error: unknown) => error instanceof UpstreamError && error.code === 'interaction_required' && error.upstreamErrorCodes.includes('AADSTS65001'),
      );
      fake.nextError = { error: 'interaction_required', error_description: 'AADSTS50076: MFA', error_codes: [50076], claims: '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}' };
      await assert.rejects(
        gateway.client.exchangeForDownstream({ subjectToken: 'user-at', audience: 'https://graph.microsoft.com', scopes: ['User.Read'], grant: 'on-behalf-of' }),
        (error: unknown) => error instanceof UpstreamError && error.code === 'interaction_required' && error.claims?.includes('acrs') === true,
      );
      fake.nextError = { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] };
      await assert.rejects(
        gateway.client.refresh('rt'),
        (error: unknown) => error instanceof UpstreamError && error.code === 'server_error',
      );
    } finally {
      await gateway.store.close();
    }
  });
});

describe('Entra in a sovereign cloud, v1 tokens, and a slow IdP', () => {
  const US = 'https://login.microsoftonline.us';

  it('discovers from the sovereign authority and accepts a v1 (STS-style) issuer when the token says ver 1.0', async () => {
    const fake = await createFakeEntra({ authority: US, tenant: TENANT, discoveryIssuer: `${US}/${TENANT}/v2.0`, clientId: 'app-id' });
    const gateway = await createGatewaySide({
      fetch: fake.fetch,
      upstream: {
        type: 'entra',
        entra: { tenantId: TENANT, authority: US, allowedTenants: [] },
        clientId: 'app-id',
        clientAuth: { method: 'client_secret_basic', clientSecret: 'fallback-secret' },
      },
    });
    try {
      for (const [ver, iss] of [['1.0', `${US}/${TENANT}/`], ['2.0', `${US}/${TENANT}/v2.0`]] as const) {
        fake.idTokenClaims = () => ({ iss, tid: TENANT, oid: OID, ver, sub: 's' });
        const started = await gateway.client.beginSignIn({ interactionId: `v${ver}` });
        assert.ok(started.authorizationUrl.startsWith(`${US}/${TENANT}/oauth2/v2.0/authorize?`));
        fake.rememberNonce(started.authorizationUrl);
        const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
        const completed = await gateway.client.completeSignIn({ callbackUrl: new URL(`http://127.0.0.1:8080/callback?code=c&state=${state}`), stateCookie: started.stateCookie });
        assert.equal(completed.identity.subject, `${TENANT}/${OID}`);
      }
      // A v1 issuer on a token that claims v2 is refused.
      fake.idTokenClaims = () => ({ iss: `${US}/${TENANT}/`, tid: TENANT, oid: OID, ver: '2.0', sub: 's' });
      const started = await gateway.client.beginSignIn({ interactionId: 'mismatch' });
      fake.rememberNonce(started.authorizationUrl);
      const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
      await assert.rejects(
        gateway.client.completeSignIn({ callbackUrl: new URL(`http://127.0.0.1:8080/callback?code=c&state=${state}`), stateCookie: started.stateCookie }),
        { code: 'access_denied' },
      );
      assert.ok(gateway.requests.every((request) => new URL(request.url).origin === US), 'nothing goes to the public cloud');
    } finally {
      await gateway.store.close();
    }
  });

  it('bounds a token request to an IdP that never answers with the configured timeout', async () => {
    const fake = await createFakeEntra({ authority: GLOBAL, tenant: TENANT, discoveryIssuer: `${GLOBAL}/${TENANT}/v2.0`, clientId: 'app-id' });
    const hanging: typeof fetch = async (input, init) => {
      if (!String(input).endsWith('/token')) return fake.fetch(input, init);
      return new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      });
    };
    const gateway = await createGatewaySide({
      fetch: hanging,
      upstream: {
        type: 'entra',
        entra: { tenantId: TENANT, authority: GLOBAL, allowedTenants: [] },
        clientId: 'app-id',
        clientAuth: { method: 'client_secret_post', clientSecret: 'fallback-secret' },
        timeoutMs: 500,
      },
    });
    try {
      await assert.rejects(gateway.client.refresh('rt'), (error: unknown) => error instanceof UpstreamError && error.code === 'temporarily_unavailable');
    } finally {
      await gateway.store.close();
    }
  });
});
