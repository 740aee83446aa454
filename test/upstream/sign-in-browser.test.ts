import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Browser, type BrowserContext } from 'playwright-core';
import { launchBrowser, skipWithoutChromium } from '../support/browser.ts';
import type { LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { startRedirectListener, type RedirectListener } from '../support/demo-harness.ts';
import type { GatewaySide } from './support/fixture.ts';
import { startLocalIdpSide, type LocalIdpSide } from './support/local-idp-side.ts';

/** `pending`, or a failure naming `what` after 30 s: a hang in the browser or the IdP says where it is. */
async function within<T>(what: string, pending: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting for ${what} after 30 s`)), 30_000);
  });
  return Promise.race([pending, late]).finally(() => clearTimeout(timer));
}

describe('upstream sign-in in a real browser (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let idp: LocalIdentityProvider;
  let gateway: GatewaySide;
  let side: LocalIdpSide;
  let browser: Browser;
  // The gateway's callback: a listener on a free port records where the IdP sent the browser (the gateway itself is
  // not running), so the test never depends on a fixed port such as the demo's 8080 being free.
  let callbacks: RedirectListener;
  let PUBLIC_URL: string;

  before(async () => {
    callbacks = await startRedirectListener('/callback');
    PUBLIC_URL = new URL(callbacks.url).origin;
    side = await startLocalIdpSide(PUBLIC_URL);
    ({ idp, gateway } = side);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await side?.close();
    await callbacks?.close();
  });

  /** Runs the IdP sign-in in `context` and returns the callback URL the browser was sent to. */
  async function signInWith(context: BrowserContext, authorizationUrl: string, user: { username: string; password: string }): Promise<URL> {
    const page = await within('a new page', context.newPage());
    // Every step fails within 30 s with Playwright's account of what it waited for (its default is to wait forever),
    // so a slow or unexpected page names itself instead of ending as the test's timeout.
    page.setDefaultTimeout(30_000);
    await page.goto(authorizationUrl);
    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    const callback = callbacks.next();
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Never wait forever for a redirect that is not coming: say where the browser ended up instead (the page's URL
    // only: reading its content can itself hang when the browser is stuck).
    const reached = await within(`the callback (the browser is at ${page.url()})`, callback);
    // The listener saw the request before the browser has its answer: closing a page mid-navigation can hang
    // Chromium's close, so let the callback page finish loading first.
    await page.waitForURL((url) => url.origin === PUBLIC_URL);
    await page.waitForLoadState('load');
    await within('closing the page', page.close());
    assert.equal(reached.origin, PUBLIC_URL, 'the IdP redirected to the gateway callback');
    return reached;
  }

  it('signs in through the form; a callback carried into another browser fails, the right one succeeds', async () => {
    const victim = await within('a browser context', browser.newContext());
    const attacker = await within('a second browser context', browser.newContext());
    try {
      const victimStart = await within('beginSignIn', gateway.client.beginSignIn({ interactionId: 'victim' }));
      const attackerStart = await within('the second beginSignIn', gateway.client.beginSignIn({ interactionId: 'attacker' }));
      const victimCallback = await signInWith(victim, victimStart.authorizationUrl, idp.users[0]!);
      const attackerCallback = await signInWith(attacker, attackerStart.authorizationUrl, idp.users[1]!);

      await assert.rejects(
        gateway.client.completeSignIn({ callbackUrl: attackerCallback, stateCookie: victimStart.stateCookie }),
        // The log says it too (`detail`): a login-CSRF attempt is told apart from an expired link.
        (error: unknown) => error instanceof Error && /another browser/.test(error.message) && /another browser/.test(String((error as { detail?: unknown }).detail)),
      );
      const completed = await gateway.client.completeSignIn({ callbackUrl: victimCallback, stateCookie: victimStart.stateCookie });
      assert.equal(completed.interactionId, 'victim');
      assert.equal(completed.identity.name, 'Adele Vance');
      assert.ok(completed.tokens.refreshToken);
    } finally {
      await within('closing the contexts', Promise.all([victim.close(), attacker.close()]));
    }
  });
});
