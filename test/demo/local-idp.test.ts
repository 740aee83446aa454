import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, exportJWK } from 'jose';
import { startLocalIdentityProvider, type LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { loadUsersFile } from '../../src/demo/local-idp/users.ts';
import { ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../../src/protocol/oauth-urns.ts';
import { startWorkloadIdentityIssuer, type WorkloadIdentityIssuer } from '../../src/demo/workload-identity/workload-identity-issuer.ts';
import { CookieBrowser, signInAtLocalIdp } from '../upstream/support/cookie-browser.ts';
import { freePort } from '../support/ports.ts';
import { createGatewaySide } from '../upstream/support/fixture.ts';

const CALLBACK = 'http://127.0.0.1:8080/callback';
const DIRECTORY = 'http://localhost:8083';

describe('local identity provider (development only)', () => {
  let workload: WorkloadIdentityIssuer;
  let idp: LocalIdentityProvider;
  let dir: string;
  const gatewayKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let publicGatewayJwk: Awaited<ReturnType<typeof exportJWK>>;

  // What oidc-provider tells the terminal (console.warn) while this file's token requests pass the IdP's gate.
  const providerWarnings: string[] = [];
  const consoleWarn = console.warn;

  before(async () => {
    console.warn = (...args: unknown[]) => {
      if (String(args[0]).startsWith('oidc-provider WARNING')) providerWarnings.push(String(args[0]));
      consoleWarn(...args);
    };
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-idp-'));
    workload = await startWorkloadIdentityIssuer();
    publicGatewayJwk = await exportJWK(gatewayKey.publicKey);
    const publicJwk = { ...publicGatewayJwk, kid: 'gateway-key', alg: 'ES256', use: 'sig' };
    idp = await startLocalIdentityProvider({
      gateway: { clientId: 'gatehouse', redirectUris: [CALLBACK], workloadIssuerUrl: workload.issuer, jwks: [publicJwk] },
      downstreamAudiences: [DIRECTORY],
    });
  });
  after(async () => {
    console.warn = consoleWarn;
    await idp?.close();
    await workload?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const authorizeUrl = (extra: Record<string, string> = {}) => {
    const url = new URL(`${idp.issuer}/authorize`);
    url.search = new URLSearchParams({
      client_id: 'gatehouse',
      response_type: 'code',
      redirect_uri: CALLBACK,
      scope: `openid profile ${idp.gatewayScope}`,
      state: 's',
      nonce: 'n',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      ...extra,
    }).toString();
    return url;
  };

  it('shows a labelled, clearly marked sign-in form with every value escaped, and refuses a wrong password', async () => {
    const browser = new CookieBrowser();
    const { response } = await browser.follow(authorizeUrl({ login_hint: '"><script>alert(1)</script>' }), () => false);
    assert.equal(response?.status, 200);
    const html = (await response?.text()) ?? '';
    assert.match(html, /development and tests only/);
    assert.match(html, /<label for="username">/);
    assert.match(html, /<label for="password">/);
    assert.equal(html.includes('<script>'), false);
    assert.match(html, /&quot;&gt;&lt;script&gt;/);
    assert.match(response?.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);

    const action = /action="([^"]+)"/.exec(html)?.[1] ?? '';
    const wrong = await browser.request(new URL(action, idp.issuer), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: 'adele', password: 'not-it', action: 'login' }),
    });
    assert.equal(wrong.status, 401);
    assert.match(await wrong.text(), /incorrect/);
  });

  it('requires PKCE: an authorization request without a code challenge is refused', async () => {
    const url = authorizeUrl();
    url.searchParams.delete('code_challenge');
    url.searchParams.delete('code_challenge_method');
    const response = await fetch(url, { redirect: 'manual' });
    const location = new URL(response.headers.get('location') ?? '', idp.issuer);
    assert.equal(location.searchParams.get('error'), 'invalid_request');
  });

  it('accepts private_key_jwt from the gateway and issues gateway-audience tokens with Entra-style claims', async () => {
    const keyFile = join(dir, 'gateway.pem');
    await writeFile(keyFile, gatewayKey.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const gateway = await createGatewaySide({
      upstream: {
        type: 'oidc',
        issuer: idp.issuer,
        clientId: 'gatehouse',
        clientAuth: { method: 'private_key_jwt', privateKeyFile: keyFile, keyId: 'gateway-key' },
        scopes: ['openid', 'profile', 'email', 'offline_access', idp.gatewayScope],
      },
    });
    try {
      const started = await gateway.client.beginSignIn({ interactionId: 'pkjwt' });
      const callbackUrl = await signInAtLocalIdp(new CookieBrowser(), started.authorizationUrl, idp.users[1]!, 'http://127.0.0.1:8080');
      const { identity, tokens } = await gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie });
      assert.equal(identity.name, 'Alex Wilber');
      assert.ok(identity.groups.includes('gatehouse-admins'));
      const claims = decodeJwt(tokens.accessToken);
      assert.equal(claims.aud, idp.gatewayAudience);
      assert.equal(claims.scp, 'access_as_user');
      assert.equal(claims.oid, idp.users[1]!.id);
      assert.ok(typeof claims.tid === 'string');

      await assert.rejects(
        gateway.client.exchangeForDownstream({ subjectToken: tokens.accessToken, audience: 'https://elsewhere.test', scopes: ['User.Read'], grant: 'token-exchange' }),
        (error: unknown) => (error as { upstreamError?: string }).upstreamError === 'invalid_target',
      );
      await assert.rejects(
        gateway.client.exchangeForDownstream({ subjectToken: 'not-a-token', audience: DIRECTORY, scopes: ['User.Read'], grant: 'on-behalf-of' }),
        (error: unknown) => (error as { code?: string }).code === 'interaction_required',
      );
      idp.users[1]!.requireConsent = true;
      await assert.rejects(
        gateway.client.exchangeForDownstream({ subjectToken: tokens.accessToken, audience: DIRECTORY, scopes: ['User.Read'], grant: 'on-behalf-of' }),
        (error: unknown) => (error as { upstreamErrorCodes?: string[] }).upstreamErrorCodes?.includes('AADSTS65001') === true,
      );
    } finally {
      idp.users[1]!.requireConsent = false;
      await gateway.store.close();
    }
  });

  it('trusts a federated assertion only for the configured issuer, subject and audience', async () => {
    const tokenRequest = async (assertion: string) =>
      fetch(`${idp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: 'unknown',
          client_id: 'gatehouse',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }),
      });
    for (const assertion of [await workload.mint({ subject: 'system:serviceaccount:other:intruder' }), await workload.mint({ audience: 'api://other' })]) {
      const refused = await tokenRequest(assertion);
      assert.equal(refused.status, 401);
      const body = (await refused.json()) as { error: string; error_codes: number[] };
      assert.equal(body.error, 'invalid_client');
      assert.deepEqual(body.error_codes, [70021]);
    }
    // The right assertion authenticates; the (unknown) refresh token is then what fails.
    const accepted = await tokenRequest(await workload.mint());
    assert.equal(accepted.status, 400);
    assert.equal(((await accepted.json()) as { error: string }).error, 'invalid_grant');
  });

  it('keeps its signing key and the sessions behind refresh tokens across a restart, given a state file (the demo gives one)', async () => {
    // Each start made a new key and forgot every session: after a demo restart, the directory API refused the
    // downstream tokens the gateway had cached for up to an hour, and every upstream refresh token was unknown.
    const stateFile = join(dir, 'demo-idp-state.json');
    const port = await freePort();
    const start = () =>
      startLocalIdentityProvider({
        port,
        stateFile,
        gateway: { clientId: 'gatehouse', redirectUris: [CALLBACK], workloadIssuerUrl: workload.issuer, jwks: [{ ...publicGatewayJwk, kid: 'gateway-key', alg: 'ES256', use: 'sig' }] },
        downstreamAudiences: [DIRECTORY],
      });
    const keyFile = join(dir, 'gateway-restart.pem');
    await writeFile(keyFile, gatewayKey.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    let first: LocalIdentityProvider | undefined = await start();
    const gateway = await createGatewaySide({
      upstream: { type: 'oidc', issuer: first.issuer, clientId: 'gatehouse', clientAuth: { method: 'private_key_jwt', privateKeyFile: keyFile, keyId: 'gateway-key' }, scopes: ['openid', 'profile', 'email', 'offline_access', first.gatewayScope] },
    });
    let second: LocalIdentityProvider | undefined;
    const browser = new CookieBrowser();
    try {
      const started = await gateway.client.beginSignIn({ interactionId: 'restart' });
      const callbackUrl = await signInAtLocalIdp(browser, started.authorizationUrl, first.users[0]!, 'http://127.0.0.1:8080');
      const { tokens } = await gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie });
      const downstream = await gateway.client.exchangeForDownstream({ subjectToken: tokens.accessToken, audience: DIRECTORY, scopes: ['User.Read'], grant: 'on-behalf-of' });
      const keysBefore = (await (await fetch(`${first.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> };
      await first.close();
      first = undefined;
      assert.match((await stat(stateFile)).mode.toString(8), /600$/, 'it holds a private key and refresh tokens');

      second = await start();
      const keysAfter = (await (await fetch(`${second.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> };
      assert.deepEqual(keysAfter.keys.map((key) => key.kid), keysBefore.keys.map((key) => key.kid));
      assert.ok(keysAfter.keys.some((key) => key.kid === decodeProtectedHeader(downstream.accessToken).kid), 'the cached downstream token still verifies');
      const refreshed = await gateway.client.refresh(tokens.refreshToken!);
      assert.ok(refreshed.accessToken);
      // The browser's session at the IdP too (its cookie is signed with keys kept in the file): no sign-in form.
      const again = await gateway.client.beginSignIn({ interactionId: 'restart-again' });
      const silently = await browser.follow(again.authorizationUrl, (url) => url.href.startsWith('http://127.0.0.1:8080'));
      assert.ok(silently.stoppedAt, `straight back to the gateway, not HTTP ${silently.response?.status}`);
      // What has expired is neither kept nor written again: a used code, a client assertion's jti, a rotated token.
      await second.close();
      second = undefined;
      const saved = JSON.parse(await readFile(stateFile, 'utf8')) as { records: Array<[string, { expiresAt?: number }]> };
      assert.ok(saved.records.every(([, record]) => record.expiresAt === undefined || record.expiresAt > Date.now()));
      const expired = JSON.stringify({ ...saved, records: [...saved.records, ['ReplayDetection:old', { payload: { jti: 'old' }, expiresAt: Date.now() - 1000 }]] });
      await writeFile(stateFile, expired, { mode: 0o600 });
      second = await start();
      await second.close();
      second = undefined;
      const rewritten = await readFile(stateFile, 'utf8');
      assert.ok(!rewritten.includes('ReplayDetection:old'), 'an expired record is dropped when read');
      // A kept key that does not import (a hand-edited file) is replaced: the IdP still starts, with a new key.
      const edited = JSON.parse(rewritten) as { signingKey: { d: string; kid?: string } };
      await writeFile(stateFile, JSON.stringify({ ...edited, signingKey: { ...edited.signingKey, d: 'not-a-key' } }), { mode: 0o600 });
      second = await start();
      const replaced = (await (await fetch(`${second.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> };
      assert.notDeepEqual(replaced.keys.map((key) => key.kid), keysBefore.keys.map((key) => key.kid));
    } finally {
      await first?.close();
      await second?.close();
      await gateway.store.close();
    }
  });

  it('loads users from a JSON file, naming the bad field when one is wrong', async () => {
    const good = join(dir, 'users.json');
    await writeFile(good, JSON.stringify([{ id: 'u1', username: 'megan', password: 'pw', name: 'Megan Bowen', email: 'megan@gatehouse.test', groups: ['sales'] }]));
    const users = loadUsersFile(good);
    assert.equal(users[0]?.name, 'Megan Bowen');
    assert.equal(users[0]?.requireInteraction, false);
    const bad = join(dir, 'bad-users.json');
    await writeFile(bad, JSON.stringify([{ id: 'u1', username: 'megan', name: 'Megan Bowen', email: 'megan@gatehouse.test' }]));
    assert.throws(() => loadUsersFile(bad), /password/);
  });

  it('hands oidc-provider the token request it gated as a stream: no "already parsed request body" warning on the terminal', () => {
    // Given as req.body, the provider read it but printed a warning at the demo's first sign-in, like a misconfiguration.
    assert.deepEqual(providerWarnings, []);
  });

  it('starts two default users with names, emails, groups and fresh passwords', () => {
    assert.deepEqual(idp.users.map((user) => user.name), ['Adele Vance', 'Alex Wilber']);
    for (const user of idp.users) {
      assert.match(user.email, /@/);
      assert.ok(user.groups.length > 0);
      assert.ok(user.password.length >= 12);
    }
  });
});

describe('local identity provider with the workload-identity issuer mounted on its origin (the demo layout)', () => {
  let idp: LocalIdentityProvider;
  before(async () => {
    idp = await startLocalIdentityProvider({
      gateway: { clientId: 'gatehouse', redirectUris: [CALLBACK] },
      downstreamAudiences: [DIRECTORY],
      workloadIdentityPath: '/workload-identity',
    });
  });
  after(async () => {
    await idp?.close();
  });

  it('serves the issuer under the path and trusts its assertions for the gateway client', async () => {
    const workloadIssuer = idp.workloadIdentity?.issuer ?? '';
    assert.equal(workloadIssuer, `${idp.issuer}/workload-identity`);
    const discovery = (await (await fetch(`${workloadIssuer}/.well-known/openid-configuration`)).json()) as { issuer: string };
    assert.equal(discovery.issuer, workloadIssuer);

    const gateway = await createGatewaySide({
      upstream: {
        type: 'oidc',
        issuer: idp.issuer,
        clientId: 'gatehouse',
        clientAuth: { method: 'federated', issuerUrl: workloadIssuer, audience: 'api://AzureADTokenExchange' },
        scopes: ['openid', 'profile', 'email', 'offline_access', idp.gatewayScope],
      },
    });
    try {
      const started = await gateway.client.beginSignIn({ interactionId: 'demo-layout' });
      const callbackUrl = await signInAtLocalIdp(new CookieBrowser(), started.authorizationUrl, idp.users[0]!, 'http://127.0.0.1:8080');
      const { tokens } = await gateway.client.completeSignIn({ callbackUrl, stateCookie: started.stateCookie });
      const downstream = await gateway.client.exchangeForDownstream({ subjectToken: tokens.accessToken, audience: DIRECTORY, scopes: ['User.Read'], grant: 'on-behalf-of' });
      assert.equal(decodeJwt(downstream.accessToken).aud, DIRECTORY);
    } finally {
      await gateway.store.close();
    }
  });
});

describe('local identity provider as enterprise IdP: ID-JAG issuance refusals', () => {
  let idp: LocalIdentityProvider;
  const exchange = (params: Record<string, string>) =>
    fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: 'sso-client',
        client_secret: 'sso-client-secret-for-tests',
        grant_type: TOKEN_EXCHANGE_GRANT,
        requested_token_type: ID_JAG_TOKEN_TYPE,
        subject_token_type: ID_TOKEN_TYPE,
        audience: 'http://127.0.0.1:1',
        ...params,
      }).toString(),
    });
  before(async () => {
    idp = await startLocalIdentityProvider({
      gateway: { clientId: 'gatehouse', redirectUris: [CALLBACK] },
      downstreamAudiences: [DIRECTORY],
      enterprise: { clients: [{ clientId: 'sso-client', clientSecret: 'sso-client-secret-for-tests' }], audiences: ['http://127.0.0.1:1'] },
    });
  });
  after(async () => {
    await idp?.close();
  });

  it('refuses a subject token that is not its ID token for this client, an unknown audience, another subject token type', async () => {
    const forged = await exchange({ subject_token: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' });
    assert.deepEqual([forged.status, ((await forged.json()) as { error: string }).error], [400, 'invalid_grant']);
    const elsewhere = await exchange({ subject_token: 'x', audience: 'https://not-trusted.example' });
    assert.deepEqual([elsewhere.status, ((await elsewhere.json()) as { error: string }).error], [400, 'invalid_target']);
    const accessToken = await exchange({ subject_token: 'x', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
    assert.deepEqual([accessToken.status, ((await accessToken.json()) as { error: string }).error], [400, 'invalid_request']);
  });
});
