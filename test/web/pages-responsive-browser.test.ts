import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { pkcePair } from '../authorization/harness.ts';
import { checkPageInEveryView, PAGE_VIEWS } from '../support/page-checks.ts';
import { artifactsDir, launchBrowser, startDemo, startRedirectListener, type RedirectListener, type RunningDemo } from '../support/demo-harness.ts';

/**
 * Every page a person sees, in headless Chromium at a desktop width (1280 px) and a phone width (390 px, light and dark): axe-core
 * finds no WCAG 2.x A/AA violation (contrast included), nothing makes the page scroll sideways, every button is
 * on screen, no scope name is broken across lines, and each Revoke button names the application it revokes. A
 * screenshot of each page at each width goes to test-artifacts/.
 */
const CHROMIUM = '/usr/bin/chromium';
const APP_NAME = 'Team Notes';
/**
 * The pages carry an operator's branding (src/web/branding.ts): its name, a logo (the favicon, same origin), a
 * support link and an accent colour that must keep every check passing.
 */
const BRANDING = { organisationName: 'Contoso Platform', logoUrl: '/favicon.ico', supportUrl: 'https://support.contoso.example/mcp', accentColour: '#8a1538' };

describe('every page at 1280 and 390 px: accessible, usable, nothing off-screen', { skip: existsSync(CHROMIUM) ? false : 'chromium is not installed' }, () => {
  let demo: RunningDemo;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let listener: RedirectListener;
  const checked: string[] = [];

  const checkPage = async (name: string): Promise<void> => {
    checked.push(...(await checkPageInEveryView(page, name)));
  };

  /** Signs in at the local identity provider when it asks (the console's sign-in goes through it). */
  const signInIfAsked = async (): Promise<void> => {
    await page.waitForLoadState('load');
    if ((await page.locator('input#username').count()) === 0) return;
    await page.fill('input#username', 'alex');
    await page.fill('input#password', 'alex-e2e-password');
    await Promise.all([page.waitForNavigation(), page.click('button[value=login]')]);
    await page.waitForLoadState('load');
  };

  before(async () => {
    demo = await startDemo({ config: { branding: BRANDING } });
    listener = await startRedirectListener();
    browser = await launchBrowser();
    context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    await mkdir(artifactsDir, { recursive: true });
  });
  after(async () => {
    await context?.close();
    await browser?.close();
    await listener?.close();
    await demo?.close();
  });

  it('landing page and error page', async () => {
    await page.goto(`${demo.publicUrl}/`);
    assert.match(await page.locator('.brand').innerText(), new RegExp(BRANDING.organisationName));
    assert.equal(await page.getByRole('link', { name: /Contact .* support/ }).getAttribute('href'), BRANDING.supportUrl);
    await checkPage('landing');
    const error = await page.goto(`${demo.publicUrl}/authorize?client_id=no-such-client&response_type=code`);
    assert.ok(error && error.status() >= 400, 'an error status');
    assert.match(error.headers()['content-type'] ?? '', /text\/html/);
    await checkPage('error');
  });

  /** Registers a public client (RFC 7591) named `name` and returns the URL of its authorization request. */
  const authorizationRequestFor = async (name: string): Promise<string> => {
    const registration = await fetch(`${demo.publicUrl}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: name, redirect_uris: [listener.url], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }),
    });
    assert.equal(registration.status, 201, await registration.clone().text());
    const { client_id: clientId } = (await registration.json()) as { client_id: string };
    const authorize = new URL(`${demo.publicUrl}/authorize`);
    for (const [name, value] of Object.entries({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: listener.url,
      code_challenge: pkcePair().challenge,
      code_challenge_method: 'S256',
      scope: 'mcp:tools graph:read',
      resource: demo.mcpUrl,
      state: 'pages',
    })) authorize.searchParams.set(name, value);
    return authorize.href;
  };

  it('consent page, then connected apps with a Revoke button that names the app', async () => {
    await page.goto(await authorizationRequestFor(APP_NAME));
    await page.locator('button[value=approve]').waitFor();
    assert.match(await page.locator('.brand').innerText(), /Contoso Platform/);
    assert.equal(await page.locator('.notice.warning').count(), 1, 'one warning box');
    await checkPage('consent');
    await Promise.all([page.waitForNavigation(), page.click('button[value=approve]')]);
    await signInIfAsked();
    await listener.next();

    await page.goto(`${demo.publicUrl}/account`);
    await signInIfAsked();
    assert.equal(new URL(page.url()).pathname, '/account');
    await page.getByRole('button', { name: new RegExp(`Revoke access.*${APP_NAME}`) }).waitFor();
    await checkPage('account');
  });

  it('consent page of a signed-in browser for a client named like a well-known product', async () => {
    await page.goto(await authorizationRequestFor('Visual Studio Code'));
    await page.locator('button[value=approve]').waitFor();
    assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /Visual Studio Code unverified wants/);
    assert.match(await page.locator('.signed-in').innerText(), /^Signed in as /);
    assert.equal(await page.locator('.notice.warning').count(), 1, 'one warning box');
    await checkPage('consent-lookalike');
  });

  it('admin overview, routes, clients, grants, tool calls, tools: each Revoke button names its app', async () => {
    // Requests without a token: the overview lists them from the audit records in the store (as `no token`, a
    // client's discovery step, not counted as denied).
    for (let i = 0; i < 3; i++) {
      const refused = await fetch(demo.mcpUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' });
      assert.equal(refused.status, 401);
    }
    await page.goto(`${demo.publicUrl}/admin`);
    await signInIfAsked();
    assert.equal(new URL(page.url()).pathname, '/admin');
    // Audit records are written in batches off the request path: reload until they are in the store.
    while ((await page.locator('td[data-label="Reason"]', { hasText: 'no token' }).count()) === 0) await page.reload();
    assert.equal(await page.locator('svg.chart text.axis-title').count(), 2);
    await checkPage('admin-overview');
    await page.getByRole('link', { name: 'last 7 days' }).click();
    assert.match(await page.getByRole('heading', { level: 2 }).first().innerText(), /last 7 days/);
    await checkPage('admin-overview-7d');
    await page.goto(`${demo.publicUrl}/admin/routes`);
    assert.equal(await page.getByRole('heading', { level: 2, name: /\/mcp/ }).count(), 1);
    await checkPage('admin-routes');
    await page.goto(`${demo.publicUrl}/admin/clients`);
    assert.equal(await page.getByRole('button', { name: new RegExp(`^Revoke all.*${APP_NAME}`) }).count(), 1);
    await checkPage('admin-clients');
    await page.goto(`${demo.publicUrl}/admin/grants`);
    assert.ok((await page.getByRole('button', { name: new RegExp(`^Revoke.*${APP_NAME}`) }).count()) >= 1);
    for (const button of await page.getByRole('button', { name: /^Revoke/ }).all()) {
      assert.match((await button.getAttribute('aria-label')) ?? '', /^Revoke (all grants|access) of .+/);
    }
    await checkPage('admin-grants');
    await page.goto(`${demo.publicUrl}/admin/audit`);
    await checkPage('admin-audit');
    await page.goto(`${demo.publicUrl}/admin/audit?window=7d&outcome=denied&client=${encodeURIComponent(APP_NAME)}`);
    assert.equal(await page.locator('select[name=window] option[selected]').getAttribute('value'), '7d');
    await checkPage('admin-audit-filtered');
    const badFilter = await page.goto(`${demo.publicUrl}/admin/audit?window=forever`);
    assert.equal(badFilter?.status(), 400);
    assert.match(await page.locator('main').innerText(), /tool-call filter is not valid/);
    await checkPage('admin-audit-bad-filter');
    await page.goto(`${demo.publicUrl}/admin/tools`);
    await checkPage('admin-tools-none-pending');
  });

  it('signed-out page', async () => {
    await page.goto(`${demo.publicUrl}/admin`);
    await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Sign out' }).click()]);
    await page.waitForLoadState('load');
    await page.goto(`${demo.publicUrl}/admin/signed-out`);
    await checkPage('signed-out');
    assert.equal(checked.length, 15 * PAGE_VIEWS.length);
  });
});
