import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { DEMO_USERS, launchBrowser, startDemo, type DemoUser, type RunningDemo } from '../support/demo-harness.ts';

/**
 * The console signing in through the real local IdP and the authorization server's shared `/callback`, exactly as
 * `gatehouse start` assembles them: alex is in the demo's `gatehouse-admins` group, adele is not.
 */
describe('console sign-in through the local demo IdP', { skip: existsSync('/usr/bin/chromium') ? false : 'chromium is not installed', timeout: 120_000 }, () => {
  let demo: RunningDemo;
  let browser: Browser;
  const alex = DEMO_USERS.find((user) => user.username === 'alex') as DemoUser;
  const adele = DEMO_USERS.find((user) => user.username === 'adele') as DemoUser;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
  });

  /** Opens `path`, answers the IdP's sign-in form, and returns the page once back at the gateway. */
  const openSignedIn = async (user: DemoUser, path: string): Promise<{ page: Page; status: number | undefined; close: () => Promise<void> }> => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${demo.publicUrl}${path}`);
    await page.locator('input#username').waitFor();
    await page.fill('input#username', user.username);
    await page.fill('input#password', user.password);
    const [response] = await Promise.all([page.waitForResponse((candidate) => new URL(candidate.url()).pathname === path), page.click('button[value=login]')]);
    return { page, status: response.status(), close: () => context.close() };
  };

  it('signs an admin into /admin and lists the MCP route traffic overview', async () => {
    const { page, status, close } = await openSignedIn(alex, '/admin');
    try {
      assert.equal(status, 200);
      assert.equal(new URL(page.url()).pathname, '/admin');
      assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Overview');
      assert.match(await page.locator('header').innerText(), /Alex Wilber/);
      await page.goto(`${demo.publicUrl}/account`);
      assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Connected apps');
    } finally {
      await close();
    }
  });

  it('gives a non-admin their connected apps but a 403 on /admin', async () => {
    const { page, status, close } = await openSignedIn(adele, '/admin');
    try {
      assert.equal(status, 403);
      assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Access was not allowed');
      const account = await page.goto(`${demo.publicUrl}/account`);
      assert.equal(account?.status(), 200);
      assert.match(await page.locator('main').innerText(), /You have not connected any applications/);
    } finally {
      await close();
    }
  });
});
