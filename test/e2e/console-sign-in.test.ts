import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser, signInWithBrowser, startDemo, type RunningDemo } from '../support/demo-harness.ts';

/**
 * The admin console and the connected-apps page sign in through the same upstream IdP and the same `/callback` as MCP
 * clients' sign-ins; the callback hands console completions to `completeConsoleSignIn` (wired in src/app/assemble-parts.ts).
 * In the demo, members of the local IdP's `gatehouse-admins` group (Alex) are console admins.
 */
describe('admin console and connected apps sign-in through the shared /callback', () => {
  let demo: RunningDemo;
  let browser: Browser;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
  });

  async function signedInPage(username: string, path: string) {
    const user = demo.users.find((candidate) => candidate.username === username);
    assert.ok(user);
    const context = await browser.newContext();
    const signIn = await signInWithBrowser({ context, authorizationUrl: `${demo.publicUrl}${path}`, user, redirectUri: `${demo.publicUrl}${path}` });
    assert.deepEqual(signIn.pages, ['sign-in'], 'the console asks no OAuth consent, only the IdP sign-in');
    const page = await context.newPage();
    const response = await page.goto(`${demo.publicUrl}${path}`);
    return { context, page, status: response?.status(), heading: await page.locator('h1').innerText() };
  }

  it('an admin (gatehouse-admins) signs in and sees the admin console', async () => {
    const { context, status, heading } = await signedInPage('alex', '/admin');
    try {
      assert.equal(status, 200);
      assert.notEqual(heading, 'Access was not allowed');
    } finally {
      await context.close();
    }
  });

  it('any other user gets their connected apps, and a 403 on /admin', async () => {
    const { context, page, status } = await signedInPage('adele', '/account');
    try {
      assert.equal(status, 200);
      const admin = await page.goto(`${demo.publicUrl}/admin`);
      assert.equal(admin?.status(), 403);
      assert.equal(await page.locator('h1').innerText(), 'Access was not allowed');
    } finally {
      await context.close();
    }
  });

  it('signing out ends the IdP session too (RP-initiated logout): the next visit asks for the password again', async () => {
    const { context, page, status } = await signedInPage('alex', '/admin');
    try {
      assert.equal(status, 200);
      await Promise.all([page.waitForNavigation(), page.click('form[action="/admin/sign-out"] button')]);
      // The local IdP's end-session endpoint asks for confirmation, as oidc-provider (and Entra, to pick an account) do.
      assert.ok(page.url().startsWith(demo.identityProviderUrl), `at the IdP's logout: ${page.url()}`);
      await Promise.all([page.waitForNavigation(), page.click('button[value=yes]')]);
      assert.equal(new URL(page.url()).pathname, '/admin/signed-out');
      assert.equal(await page.locator('h1').innerText(), 'Signed out');

      await page.goto(`${demo.publicUrl}/admin`);
      await page.waitForLoadState('load');
      assert.ok(page.url().startsWith(demo.identityProviderUrl), `asked to sign in again at the IdP, not let in: ${page.url()}`);
      assert.equal(await page.locator('input#username').count(), 1);
    } finally {
      await context.close();
    }
  });
});
