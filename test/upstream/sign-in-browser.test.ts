import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { startLocalIdentityProvider, type LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { startWorkloadIdentityIssuer, type WorkloadIdentityIssuer } from '../../src/demo/workload-identity/workload-identity-issuer.ts';
import { createGatewaySide, type GatewaySide } from './support/fixture.ts';

const CHROMIUM = '/usr/bin/chromium';
const PUBLIC_URL = 'http://127.0.0.1:8080';

describe('upstream sign-in in a real browser (headless Chromium)', { skip: existsSync(CHROMIUM) ? false : 'chromium is not installed' }, () => {
  let workload: WorkloadIdentityIssuer;
  let idp: LocalIdentityProvider;
  let gateway: GatewaySide;
  let browser: Browser;

  before(async () => {
    workload = await startWorkloadIdentityIssuer();
    idp = await startLocalIdentityProvider({
      gateway: { clientId: 'gatehouse', redirectUris: [`${PUBLIC_URL}/callback`], workloadIssuerUrl: workload.issuer },
      downstreamAudiences: ['http://localhost:8083'],
    });
    gateway = await createGatewaySide({
      publicUrl: PUBLIC_URL,
      upstream: {
        type: 'oidc',
        issuer: idp.issuer,
        clientId: 'gatehouse',
        clientAuth: { method: 'federated', issuerUrl: workload.issuer, audience: 'api://AzureADTokenExchange' },
        scopes: ['openid', 'profile', 'email', 'offline_access', idp.gatewayScope],
      },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
    await gateway?.store.close();
    await idp?.close();
    await workload?.close();
  });

  /** Runs the IdP sign-in in `context` and returns the callback URL the browser was sent to (the gateway is not running). */
  async function signInWith(context: BrowserContext, authorizationUrl: string, user: { username: string; password: string }): Promise<URL> {
    const page = await context.newPage();
    let callback: URL | undefined;
    await page.route(`${PUBLIC_URL}/**`, async (route) => {
      callback = new URL(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'callback reached' });
    });
    await page.goto(authorizationUrl);
    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${PUBLIC_URL}/**`);
    await page.close();
    assert.ok(callback, 'the IdP redirected to the gateway callback');
    return callback;
  }

  it('signs in through the form; a callback carried into another browser fails, the right one succeeds', async () => {
    const victim = await browser.newContext();
    const attacker = await browser.newContext();
    try {
      const victimStart = await gateway.client.beginSignIn({ interactionId: 'victim' });
      const attackerStart = await gateway.client.beginSignIn({ interactionId: 'attacker' });
      const victimCallback = await signInWith(victim, victimStart.authorizationUrl, idp.users[0]!);
      const attackerCallback = await signInWith(attacker, attackerStart.authorizationUrl, idp.users[1]!);

      await assert.rejects(
        gateway.client.completeSignIn({ callbackUrl: attackerCallback, stateCookie: victimStart.stateCookie }),
        /another browser/,
      );
      const completed = await gateway.client.completeSignIn({ callbackUrl: victimCallback, stateCookie: victimStart.stateCookie });
      assert.equal(completed.interactionId, 'victim');
      assert.equal(completed.identity.name, 'Adele Vance');
      assert.ok(completed.tokens.refreshToken);
    } finally {
      await victim.close();
      await attacker.close();
    }
  });
});
