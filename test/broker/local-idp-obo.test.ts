import assert from 'node:assert/strict';
import { clearStepUp, pendingStepUp } from '../../src/records/step-up.ts';
import { forgetDownstreamTokens } from '../../src/records/downstream-tokens.ts';
import { LOCAL_MFA_POLICY_ID } from '../../src/demo/local-idp/step-up.ts';
import { after, before, describe, it } from 'node:test';
import { createTokenBroker } from '../../src/broker/token-broker.ts';
import type { TokenBroker } from '../../src/broker/types.ts';
import { configSchema } from '../../src/config/schema.ts';
import { startDirectoryApi, type RunningDirectoryApi } from '../../src/demo/directory-api/directory-api.ts';
import { directoryUsersFrom } from '../../src/demo/directory-api/local-users.ts';
import type { LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { loadUpstreamTokens, saveUpstreamTokens } from '../../src/upstream/token-vault.ts';
import { CookieBrowser, signInAtLocalIdp } from '../upstream/support/cookie-browser.ts';
import type { GatewaySide } from '../upstream/support/fixture.ts';
import { DIRECTORY_AUDIENCE, startLocalIdpSide, type LocalIdpSide } from '../upstream/support/local-idp-side.ts';
import { capturingLogger } from './support/fixtures.ts';

const PUBLIC_URL = 'http://127.0.0.1:8080';
/** The demo directory API's audience; in the broker test the API itself listens on a free port. */
const DIRECTORY = DIRECTORY_AUDIENCE;

/**
 * The broker on the real upstream client against the local identity provider: on-behalf-of with a federated client
 * assertion (no secret anywhere), the token accepted by the demo directory API, refresh of an expired upstream token,
 * and the IdP's consent and revocation answers turned into re-authorization errors.
 */
describe('token broker against the local identity provider', () => {
  let idp: LocalIdentityProvider;
  let gateway: GatewaySide;
  let side: LocalIdpSide;
  let directory: RunningDirectoryApi;
  let broker: TokenBroker;
  const log = capturingLogger();

  before(async () => {
    side = await startLocalIdpSide(PUBLIC_URL);
    ({ idp, gateway } = side);
    const discovery = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as { jwks_uri: string };
    directory = await startDirectoryApi({ port: 0, issuer: idp.issuer, audience: DIRECTORY, jwksUrl: discovery.jwks_uri, users: directoryUsersFrom(idp.users) });
    const config = configSchema.parse({
      broker: {
        downstream: [
          // Entra-style qualified scopes: with `upstream.type: oidc` the upstream client sends scopes as configured,
          // and on-behalf-of finds the audience inside them.
          { name: 'directory', audience: DIRECTORY, scopes: [`${DIRECTORY}/User.Read`], grant: 'on-behalf-of' },
          { name: 'directory-rfc8693', audience: DIRECTORY, scopes: ['User.Read'], grant: 'token-exchange' },
        ],
      },
    });
    broker = createTokenBroker({ config, store: gateway.store, keyring: gateway.keyring, clock: gateway.clock, logger: log.logger, upstream: gateway.client });
  });
  after(async () => {
    await directory?.close();
    await side?.close();
  });

  async function signIn(user: { username: string; password: string }): Promise<string> {
    const started = await gateway.client.beginSignIn({ interactionId: `interaction-${Math.random()}` });
    const callbackUrl = await signInAtLocalIdp(new CookieBrowser(), started.authorizationUrl, user, PUBLIC_URL);
    const completed = await gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie });
    return completed.identity.subject;
  }
  const grants = (type: string) =>
    gateway.requests.filter((request) => {
      const body = new URLSearchParams(request.body);
      return body.get('grant_type') === type || body.get('requested_token_use') === type;
    });

  it('obtains a directory token on-behalf-of the user with a federated assertion, and caches it', async () => {
    const adele = idp.users[0];
    assert.ok(adele);
    const subject = await signIn(adele);
    const oboBefore = grants('on_behalf_of').length;
    const token = await broker.getDownstreamToken({ user: { subject }, downstream: 'directory' });
    const again = await broker.getDownstreamToken({ user: { subject }, downstream: 'directory' });
    assert.equal(again.accessToken, token.accessToken);
    const obo = grants('on_behalf_of').slice(oboBefore);
    assert.equal(obo.length, 1);
    const body = new URLSearchParams(obo[0]?.body);
    assert.equal(body.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    assert.equal(body.has('client_secret'), false);

    const me = await fetch(`${directory.url}/v1.0/me`, { headers: { authorization: `Bearer ${token.accessToken}` } });
    const profile = (await me.json()) as Record<string, unknown>;
    assert.equal(me.status, 200);
    assert.equal(profile.displayName, adele.name);
    assert.equal(profile.id, adele.id);
  });

  it('refreshes an expired upstream token (once) before an RFC 8693 exchange', async () => {
    const adele = idp.users[0];
    assert.ok(adele);
    const subject = await signIn(adele);
    const stored = await loadUpstreamTokens(gateway, subject);
    assert.ok(stored);
    await saveUpstreamTokens(gateway, subject, { ...stored, expiresAt: Date.now() - 1_000 });
    const refreshesBefore = grants('refresh_token').length;
    const results = await Promise.all([1, 2, 3].map(() => broker.getDownstreamToken({ user: { subject }, downstream: 'directory-rfc8693' })));
    assert.equal(new Set(results.map((r) => r.accessToken)).size, 1);
    assert.equal(grants('refresh_token').length - refreshesBefore, 1);
    const me = await fetch(`${directory.url}/v1.0/me`, { headers: { authorization: `Bearer ${results[0]?.accessToken}` } });
    assert.equal(me.status, 200);
  });

  it('turns missing consent (AADSTS65001) and a revoked refresh token into interaction_required', async () => {
    const alex = idp.users[1];
    assert.ok(alex);
    const subject = await signIn(alex);
    alex.requireConsent = true;
    try {
      const error = await broker.getDownstreamToken({ user: { subject }, downstream: 'directory' }).catch((e: unknown) => e);
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.code, 'interaction_required');
      assert.match(error.message, /consent/);
    } finally {
      alex.requireConsent = false;
    }

    idp.revokeRefreshTokens(alex.id);
    const stored = await loadUpstreamTokens(gateway, subject);
    assert.ok(stored);
    await saveUpstreamTokens(gateway, subject, { ...stored, expiresAt: Date.now() - 1_000 });
    const error = await broker.getDownstreamToken({ user: { subject }, downstream: 'directory-rfc8693' }).catch((e: unknown) => e);
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.code, 'interaction_required');
    assert.match(error.message, /expired or was revoked|sign in again/);
  });

  it('answers a user under the MFA policy like Entra (AADSTS50076 + claims challenge), remembered for their next sign-in', async () => {
    const alex = idp.users[1];
    assert.ok(alex);
    const subject = await signIn(alex);
    // As the gateway's callback does after a sign-in: what earlier tests cached for this user does not answer.
    await forgetDownstreamTokens(gateway.store, subject);
    alex.requireMfa = true;
    try {
      const error = await broker.getDownstreamToken({ user: { subject }, downstream: 'directory-rfc8693' }).catch((e: unknown) => e);
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.code, 'interaction_required');
      assert.equal((error.cause as { reason?: string }).reason, 'claims_challenge');
      const stepUp = await pendingStepUp(gateway.store, subject);
      assert.equal(stepUp?.reason, 'claims_challenge');
      assert.deepEqual(JSON.parse(stepUp?.claims ?? '{}'), { access_token: { polids: { essential: true, values: [LOCAL_MFA_POLICY_ID] } } });
      assert.doesNotMatch(error.message, /polids|AADSTS/);
    } finally {
      alex.requireMfa = false;
      await clearStepUp(gateway.store, subject);
    }
  });

  it('logs no token', () => {
    const logged = log.lines.join('');
    assert.ok(logged.length > 0);
    assert.doesNotMatch(logged, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/);
  });
});
