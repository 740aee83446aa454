import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { startLocalIdentityProvider, type LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { startWorkloadIdentityIssuer, type WorkloadIdentityIssuer } from '../../src/demo/workload-identity/workload-identity-issuer.ts';
import { startRedirectListener, type RedirectListener } from '../support/demo-harness.ts';
import { createGatewaySide, type GatewaySide } from './support/fixture.ts';

const CHROMIUM = '/usr/bin/chromium';

describe('upstream sign-in in a real browser (headless Chromium)', { skip: existsSync(CHROMIUM) ? false : 'chromium is not installed' }, () => {
  let workload: WorkloadIdentityIssuer;
  let idp: LocalIdentityProvider;
  let gateway: GatewaySide;
  let browser: Browser;
  // The gateway's callback: a listener on a free port records where the IdP sent the browser (the gateway itself is
  // not running), so the test never depends on a fixed port such as the demo's 8080 being free.
  let callbacks: RedirectListener;
  let PUBLIC_URL: string;

  before(async () => {
    callbacks = await startRedirectListener('/callback');
    PUBLIC_URL = new URL(callbacks.url).origin;
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
    await callbacks?.close();
  });

  /** Runs the IdP sign-in in `context` and returns the callback URL the browser was sent to. */
  async function signInWith(context: BrowserContext, authorizationUrl: string, user: { username: string; password: string }): Promise<URL> {
    const page = await context.newPage();
    await page.goto(authorizationUrl);
    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    const callback = callbacks.next();
    await page.getByRole('button', { name: 'Sign in' }).click();
    const reached = await callback;
    await page.close();
    assert.equal(reached.origin, PUBLIC_URL, 'the IdP redirected to the gateway callback');
    return reached;
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
