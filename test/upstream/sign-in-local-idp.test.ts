import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import type { WorkloadIdentityIssuer } from '../../src/demo/workload-identity/workload-identity-issuer.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { UpstreamError } from '../../src/upstream/errors.ts';
import { type SignInStateRecord } from '../../src/upstream/sign-in-state.ts';
import { upstreamStateRecord } from '../../src/records/upstream.ts';
import { loadUpstreamTokens } from '../../src/upstream/token-vault.ts';
import { CookieBrowser, signInAtLocalIdp } from './support/cookie-browser.ts';
import type { GatewaySide } from './support/fixture.ts';
import { DIRECTORY_AUDIENCE, startLocalIdpSide, type LocalIdpSide } from './support/local-idp-side.ts';

const PUBLIC_URL = 'http://127.0.0.1:8080';
const CALLBACK = `${PUBLIC_URL}/callback`;
const DIRECTORY = DIRECTORY_AUDIENCE;

describe('upstream sign-in against the local identity provider (real HTTP, federated client assertion)', () => {
  let workload: WorkloadIdentityIssuer;
  let idp: LocalIdentityProvider;
  let gateway: GatewaySide;
  let side: LocalIdpSide;

  before(async () => {
    side = await startLocalIdpSide(PUBLIC_URL);
    ({ workload, idp, gateway } = side);
  });

  after(async () => {
    await side?.close();
  });

  const adele = () => idp.users[0]!;
  const alex = () => idp.users[1]!;

  async function signIn(user = adele(), browser = new CookieBrowser()) {
    const started = await gateway.client.beginSignIn({ interactionId: `interaction-${Math.random()}` });
    const callbackUrl = await signInAtLocalIdp(browser, started.authorizationUrl, user, PUBLIC_URL);
    return { started, callbackUrl };
  }

  it('signs a user in with PKCE S256, state and nonce, authenticating with a federated assertion only', async () => {
    const before = gateway.requests.length;
    const { started, callbackUrl } = await signIn();
    const authorization = new URL(started.authorizationUrl);
    assert.equal(authorization.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authorization.searchParams.get('redirect_uri'), CALLBACK);
    assert.ok(authorization.searchParams.get('nonce'));
    assert.equal(authorization.searchParams.has('resource'), false);

    const completed = await gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie });
    assert.equal(completed.identity.name, 'Adele Vance');
    assert.equal(completed.identity.email, adele().email);
    assert.equal(completed.identity.subject, `${idp.issuer}#${adele().id}`);
    assert.deepEqual(completed.identity.groups, adele().groups);
    assert.ok(completed.tokens.refreshToken, 'offline_access yields a refresh token');
    assert.equal(decodeJwt(completed.tokens.accessToken).aud, idp.gatewayAudience);

    const tokenRequest = gateway.requests.slice(before).find((request) => request.url === `${idp.issuer}/token`);
    assert.ok(tokenRequest);
    const body = new URLSearchParams(tokenRequest.body);
    assert.equal(body.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    assert.equal(decodeJwt(body.get('client_assertion') ?? '').iss, workload.issuer);
    assert.equal(body.has('client_secret'), false);
    assert.equal(tokenRequest.headers.has('authorization'), false);
    assert.match(body.get('code_verifier') ?? '', /^[A-Za-z0-9_-]{43,128}$/);
    assert.equal(gateway.client.clientAuthMethod, 'federated', 'no client secret is configured');

    const vaulted = await loadUpstreamTokens(gateway, completed.identity.subject);
    assert.equal(vaulted?.refreshToken, completed.tokens.refreshToken);
  });

  it('two sign-ins of one browser share its binding, so the first completes after the second began; another browser\'s cookie still fails', async () => {
    // An editor connecting two servers starts two sign-ins before either returns: with a cookie per sign-in, the
    // second overwrote the first's and the first failed as "started in another browser".
    const browser = new CookieBrowser();
    const first = await gateway.client.beginSignIn({ interactionId: 'first-of-two' });
    const second = await gateway.client.beginSignIn({ interactionId: 'second-of-two', browserBinding: first.stateCookie });
    assert.equal(second.stateCookie, first.stateCookie, 'the browser keeps one binding');
    const firstCallback = await signInAtLocalIdp(browser, first.authorizationUrl, adele(), PUBLIC_URL);
    const secondCallback = await signInAtLocalIdp(browser, second.authorizationUrl, adele(), PUBLIC_URL);
    // What the browser sends back is the cookie it holds now: the one binding.
    assert.equal((await gateway.client.completeSignIn({ callbackUrl: secondCallback, stateCookie: second.stateCookie })).interactionId, 'second-of-two');
    assert.equal((await gateway.client.completeSignIn({ callbackUrl: firstCallback, stateCookie: second.stateCookie })).interactionId, 'first-of-two');
    // Each state stays single use, and a binding that is not the browser's is refused.
    await assert.rejects(gateway.client.completeSignIn({ callbackUrl: firstCallback, stateCookie: second.stateCookie }), /already used/);
    const third = await gateway.client.beginSignIn({ interactionId: 'third', browserBinding: first.stateCookie });
    const thirdCallback = await signInAtLocalIdp(new CookieBrowser(), third.authorizationUrl, adele(), PUBLIC_URL);
    const stranger = await gateway.client.beginSignIn({ interactionId: 'stranger' });
    await assert.rejects(gateway.client.completeSignIn({ callbackUrl: thirdCallback, stateCookie: stranger.stateCookie }), /another browser/);
    // A binding not of the shape the gateway makes is not adopted.
    assert.notEqual((await gateway.client.beginSignIn({ interactionId: 'odd', browserBinding: 'chosen-by-someone' })).stateCookie, 'chosen-by-someone');
  });

  it('the IdP refuses a client secret for the gateway client', async () => {
    const response = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x', client_id: 'gatehouse', client_secret: 'guess' }),
    });
    assert.equal(response.status, 401);
    assert.equal(((await response.json()) as { error: string }).error, 'invalid_client');
  });

  it('refuses a missing state, a replayed callback and a callback carried to another browser', async () => {
    const { started, callbackUrl } = await signIn();
    const withoutState = new URL(callbackUrl);
    withoutState.searchParams.delete('state');
    await assert.rejects(gateway.client.completeSignIn({ callbackUrl: withoutState, stateCookie: started.stateCookie }), {
      code: 'invalid_request',
    });
    await gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie });
    await assert.rejects(gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie }), (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.code, 'invalid_request');
      assert.match(error.message, /already used/);
      return true;
    });

    // Two browsers: the attacker's callback delivered to the victim's browser (login CSRF) fails on the binding.
    const victim = await signIn(adele());
    const attacker = await signIn(alex());
    await assert.rejects(
      gateway.client.completeSignIn({ callbackUrl: attacker.callbackUrl, stateCookie: victim.started.stateCookie }),
      /another browser/,
    );
    await assert.rejects(gateway.client.completeSignIn({ callbackUrl: victim.callbackUrl, stateCookie: undefined }), /another browser/);
    // Refused in another browser without using the state up: the browser that started the sign-in still completes it.
    const completed = await gateway.client.completeSignIn({ callbackUrl: victim.callbackUrl, stateCookie: victim.started.stateCookie });
    assert.equal(completed.identity.email, adele().email);
  });

  it('refuses an ID token whose nonce is not the one bound to this sign-in', async () => {
    const { started, callbackUrl } = await signIn();
    const state = callbackUrl.searchParams.get('state') ?? '';
    const record = await gateway.store.get<SignInStateRecord>(upstreamStateRecord.namespace, state);
    assert.ok(record);
    await gateway.store.set(upstreamStateRecord.namespace, state, { ...record, nonce: 'another-sign-in-nonce' });
    await assert.rejects(gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie }), (error: unknown) => {
      assert.ok(error instanceof UpstreamError);
      assert.equal(error.code, 'access_denied');
      assert.match(error.message, /nonce/);
      assert.equal(error.interactionId, record.interactionId);
      return true;
    });
  });

  it('refuses a callback whose iss names another issuer (RFC 9207) or that carries no code, as access_denied', async () => {
    for (const tamper of [(url: URL) => url.searchParams.set('iss', 'https://evil.example'), (url: URL) => url.searchParams.delete('code')]) {
      const { started, callbackUrl } = await signIn();
      tamper(callbackUrl);
      await assert.rejects(gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie }), (error: unknown) => {
        assert.ok(error instanceof UpstreamError);
        assert.equal(error.code, 'access_denied');
        assert.equal(error.status, 403);
        return true;
      });
    }
  });

  it('maps a sign-in cancelled at the IdP to access_denied for that interaction', async () => {
    const started = await gateway.client.beginSignIn({ interactionId: 'cancelled-one' });
    const callbackUrl = await signInAtLocalIdp(new CookieBrowser(), started.authorizationUrl, { ...adele(), action: 'cancel' }, PUBLIC_URL);
    assert.equal(callbackUrl.searchParams.get('error'), 'access_denied');
    await assert.rejects(gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie }), (error: unknown) => {
      assert.ok(error instanceof UpstreamError);
      assert.equal(error.code, 'access_denied');
      assert.equal(error.interactionId, 'cancelled-one');
      return true;
    });
  });

  it('refuses an error response whose iss names another issuer, or none from an IdP that always sends one (RFC 9207 §2.4)', async () => {
    // A mix-up attacker's IdP answering `temporarily_unavailable` would otherwise be believed, and shown as this IdP's.
    const tampers = [
      (url: URL) => url.searchParams.set('iss', 'https://evil.example'),
      (url: URL) => url.searchParams.delete('iss'),
      (url: URL) => url.searchParams.append('iss', 'https://evil.example'),
      (url: URL) => {
        url.searchParams.set('error', 'temporarily_unavailable');
        url.searchParams.set('iss', 'https://evil.example');
      },
    ];
    for (const [index, tamper] of tampers.entries()) {
      const started = await gateway.client.beginSignIn({ interactionId: `mixed-up-${index}` });
      const callbackUrl = await signInAtLocalIdp(new CookieBrowser(), started.authorizationUrl, { ...adele(), action: 'cancel' }, PUBLIC_URL);
      assert.ok(callbackUrl.searchParams.has('iss'), 'the local IdP names itself (authorization_response_iss_parameter_supported)');
      tamper(callbackUrl);
      await assert.rejects(gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie }), (error: unknown) => {
        assert.ok(error instanceof UpstreamError);
        assert.equal(error.code, 'access_denied', String(index));
        assert.match(error.message, /failed validation/, String(index));
        assert.equal(error.interactionId, `mixed-up-${index}`);
        return true;
      });
    }
  });

  it('refreshes, and exchanges the upstream token on-behalf-of and by RFC 8693 for the directory audience', async () => {
    const { started, callbackUrl } = await signIn();
    const { tokens } = await gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie });
    const refreshed = await gateway.client.refresh(tokens.refreshToken ?? '');
    assert.notEqual(refreshed.accessToken, tokens.accessToken);
    assert.ok(refreshed.refreshToken);

    for (const grant of ['on-behalf-of', 'token-exchange'] as const) {
      const downstream = await gateway.client.exchangeForDownstream({
        subjectToken: refreshed.accessToken,
        audience: DIRECTORY,
        scopes: [`${DIRECTORY}/User.Read`],
        grant,
      });
      const claims = decodeJwt(downstream.accessToken);
      assert.equal(claims.aud, DIRECTORY, grant);
      assert.equal(claims.scp, 'User.Read');
      assert.equal(claims.oid, adele().id);
      assert.equal(claims.name, 'Adele Vance');
      assert.ok(downstream.expiresAt > Date.now());
    }
    const obo = gateway.requests.filter((request) => new URLSearchParams(request.body).get('requested_token_use') === 'on_behalf_of');
    assert.ok(obo.length > 0);
    assert.equal(new URLSearchParams(obo.at(-1)?.body).has('resource'), false);
  });

  it('surfaces a revoked refresh token and an MFA demand as interaction_required with the upstream codes', async () => {
    const { started, callbackUrl } = await signIn(alex());
    const { tokens } = await gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie });

    alex().requireInteraction = true;
    try {
      await assert.rejects(
        gateway.client.exchangeForDownstream({ subjectToken: tokens.accessToken, audience: DIRECTORY, scopes: ['User.Read'], grant: 'on-behalf-of' }),
        (error: unknown) => {
          assert.ok(error instanceof UpstreamError);
          assert.equal(error.code, 'interaction_required');
          assert.deepEqual(error.upstreamErrorCodes, ['AADSTS50076']);
          assert.ok(error.claims?.includes('capolids'));
          assert.equal(error.message.includes(tokens.accessToken), false);
          return true;
        },
      );
    } finally {
      alex().requireInteraction = false;
    }

    idp.revokeRefreshTokens(alex().id);
    await assert.rejects(gateway.client.refresh(tokens.refreshToken ?? ''), (error: unknown) => {
      assert.ok(error instanceof UpstreamError);
      assert.equal(error.code, 'interaction_required');
      assert.equal(error.upstreamError, 'invalid_grant');
      assert.deepEqual(error.upstreamErrorCodes, ['AADSTS50173']);
      return true;
    });
  });
});
