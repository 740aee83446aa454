import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { type Browser } from 'playwright-core';
import { launchBrowser, skipWithoutChromium } from '../support/browser.ts';
import { upstreamSchema } from '../../src/config/schema.ts';
import { startLocalIdentityProvider, type LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { startWorkloadIdentityIssuer, type WorkloadIdentityIssuer } from '../../src/demo/workload-identity/workload-identity-issuer.ts';
import { loadUpstreamTokens } from '../../src/upstream/token-vault.ts';
import { createUpstreamClient } from '../../src/upstream/upstream-client.ts';
import { authorizeUrl, CLIENT_REDIRECT, exchangeCode, freePort, pkcePair, registerPublicClient, startAuthorizationServer, type TestServer, authorizationParams } from './harness.ts';

/**
 * The whole sign-in on real parts in a real browser: the authorization server, the real upstream client
 * (openid-client, federated client assertion from a local workload-identity issuer) and the local identity
 * provider's sign-in form. The IdP is on another origin, so this also proves the consent form's CSP lets the
 * approval redirect reach it.
 */
describe('consent and upstream sign-in end to end (real upstream client, local IdP, Chromium)', { skip: skipWithoutChromium }, () => {
  let workload: WorkloadIdentityIssuer;
  let idp: LocalIdentityProvider;
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    const port = await freePort();
    workload = await startWorkloadIdentityIssuer();
    idp = await startLocalIdentityProvider({
      gateway: { clientId: 'gatehouse', redirectUris: [`http://127.0.0.1:${port}/callback`], workloadIssuerUrl: workload.issuer },
      downstreamAudiences: ['http://localhost:8083'],
    });
    const upstream = {
      type: 'oidc',
      issuer: idp.issuer,
      clientId: 'gatehouse',
      clientAuth: { method: 'federated', issuerUrl: workload.issuer, audience: 'api://AzureADTokenExchange' },
      scopes: ['openid', 'profile', 'email', 'offline_access', idp.gatewayScope],
    };
    server = await startAuthorizationServer({
      port,
      extraConfig: { upstream },
      upstreamFactory: (ctx) =>
        createUpstreamClient({
          config: upstreamSchema.parse(upstream),
          publicUrl: ctx.publicUrl,
          store: ctx.store,
          keyring: ctx.keyring,
          clock: ctx.clock,
          random: ctx.random,
          logger: ctx.logger,
          fetch: globalThis.fetch,
          env: {},
          sleep: async () => {},
        }),
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await idp?.close();
    await workload?.close();
  });

  it('consents, signs in at the IdP, returns a code, and issues a token for the signed-in user', async () => {
    const client = await registerPublicClient(server, { client_name: 'End-to-end Client' });
    const context = await browser.newContext();
    const page = await context.newPage();
    const violations: string[] = [];
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) violations.push(message.text());
    });
    let clientRedirect: URL | undefined;
    await page.route(`${new URL(CLIENT_REDIRECT).origin}/**`, async (route) => {
      clientRedirect = new URL(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'client received the response' });
    });
    const { verifier, challenge } = pkcePair();
    await page.goto(
      authorizeUrl(server, authorizationParams(server, client.client_id, challenge, { state: 'e2e' })),
    );
    await page.getByRole('button', { name: 'Approve' }).click();
    const user = idp.users[0];
    assert.ok(user);
    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${new URL(CLIENT_REDIRECT).origin}/**`);
    await context.close();

    assert.ok(clientRedirect);
    assert.equal(clientRedirect.searchParams.get('iss'), server.publicUrl);
    assert.equal(clientRedirect.searchParams.get('state'), 'e2e');
    const code = clientRedirect.searchParams.get('code');
    assert.ok(code);
    assert.deepEqual(violations, []);

    const response = await exchangeCode(server, client, code, verifier);
    assert.equal(response.status, 200);
    const tokens = (await response.json()) as { access_token: string };
    const { payload } = await jwtVerify(tokens.access_token, createLocalJWKSet(server.ctx.keyring.publicJwks()), {
      issuer: server.publicUrl,
      audience: server.resource,
    });
    const subject = String(payload.sub);
    const account = await server.store.get<{ email: string; name: string }>('account', subject);
    assert.equal(account?.email, user.email);
    const upstreamTokens = await loadUpstreamTokens({ store: server.store, keyring: server.ctx.keyring, clock: server.ctx.clock }, subject);
    assert.ok(upstreamTokens?.accessToken, 'the upstream tokens were sealed for the broker');
  });

  it('returns access_denied with iss to the client when the user cancels at the IdP', async () => {
    const client = await registerPublicClient(server, { client_name: 'Cancelling Client' });
    const context = await browser.newContext();
    const page = await context.newPage();
    let clientRedirect: URL | undefined;
    await page.route(`${new URL(CLIENT_REDIRECT).origin}/**`, async (route) => {
      clientRedirect = new URL(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'client received the response' });
    });
    await page.goto(
      authorizeUrl(server, {
        client_id: client.client_id,
        redirect_uri: CLIENT_REDIRECT,
        response_type: 'code',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
        resource: server.resource,
        scope: 'mcp:tools',
        state: 'cancelled',
      }),
    );
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForURL(`${new URL(CLIENT_REDIRECT).origin}/**`);
    await context.close();

    assert.ok(clientRedirect);
    assert.equal(`${clientRedirect.origin}${clientRedirect.pathname}`, CLIENT_REDIRECT);
    assert.equal(clientRedirect.searchParams.get('error'), 'access_denied');
    assert.equal(clientRedirect.searchParams.get('iss'), server.publicUrl);
    assert.equal(clientRedirect.searchParams.get('state'), 'cancelled');
    assert.equal(clientRedirect.searchParams.get('code'), null);
    assert.doesNotMatch(clientRedirect.searchParams.get('error_description') ?? '', /AADSTS/, 'the IdP\'s own codes stay in our log');
  });

  it('shows the expired page, storing nothing, when the interaction expired while the user was at the IdP', async () => {
    const client = await registerPublicClient(server, { client_name: 'Slow Client' });
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(authorizeUrl(server, authorizationParams(server, client.client_id, pkcePair().challenge, { state: 'slow' })));
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url())?.[1];
    assert.ok(uid, page.url());
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByLabel('Username').waitFor();
    // The provider's interaction ends (its hour is up) while the user types a password at the IdP.
    await server.store.delete('oidc:Interaction', uid);
    const accountsBefore = (await server.store.list('account')).length;
    const sealedBefore = (await server.store.list('upstream-tokens')).length;
    const user = idp.users[1] ?? idp.users[0]!;
    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    const [answer] = await Promise.all([page.waitForResponse((response) => new URL(response.url()).pathname === '/callback'), page.getByRole('button', { name: 'Sign in' }).click()]);
    assert.equal(answer.status(), 400);
    assert.match(await page.content(), /has expired/);
    await context.close();
    assert.equal((await server.store.list('account')).length, accountsBefore, 'no account recorded');
    assert.equal((await server.store.list('upstream-tokens')).length, sealedBefore, 'no upstream tokens sealed');
  });
});
