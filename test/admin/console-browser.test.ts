import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type Browser, type Page } from 'playwright-core';
import { launchBrowser, skipWithoutChromium } from '../support/browser.ts';
import { GRANT_NAMESPACE } from '../../src/admin/admin-deps.ts';
import { REVOKED_GRANT_NAMESPACE } from '../../src/grants/revoked-grants.ts';
import { startConsoleHarness, type ConsoleHarness } from './console-harness.ts';
import { ALICE, auditRecord, BOB, GRANTS, seedAudit } from './seed.ts';
import { freePort } from '../support/ports.ts';


/** The console and connected-apps pages in headless Chromium, JavaScript off, with a screenshot of each page. */
describe('admin console in a real browser', { skip: skipWithoutChromium }, () => {
  let h: ConsoleHarness;
  let browser: Browser;
  let base: string;

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    h = await startConsoleHarness({ publicUrl: base });
    await h.app.listen({ host: '127.0.0.1', port });
    // Five minutes of traffic for the chart, some of it failing.
    for (let bucket = 0; bucket < 30; bucket++) {
      for (let i = 0; i < 3 + ((bucket * 7) % 11); i++) {
        h.metrics.observeRequest({ route: '/mcp', method: 'POST', status: i === 0 && bucket % 4 === 0 ? 502 : 200, durationSeconds: 0.02 });
      }
      h.clock.advance(10_000);
    }
    const now = h.clock.now();
    await seedAudit(h.store, [
      auditRecord({ time: now - 240_000, tool: 'get_graph_user_details' }),
      auditRecord({ time: now - 180_000, tool: 'hello', user: BOB.subject }),
      auditRecord({ time: now - 120_000, tool: 'me', outcome: 'denied', status: 403 }),
      auditRecord({ time: now - 60_000, tool: 'echo', outcome: 'error', status: 502 }),
    ]);
    browser = await launchBrowser();
    mkdirSync('test-artifacts', { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await h?.close();
  });

  const openAs = async (identity: typeof ALICE): Promise<{ page: Page; violations: string[]; close: () => Promise<void> }> => {
    h.signInAs(identity);
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    const violations: string[] = [];
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) violations.push(message.text());
    });
    return { page, violations, close: () => context.close() };
  };

  const screenshot = async (page: Page, name: string): Promise<void> => {
    const path = `test-artifacts/${name}.png`;
    await page.screenshot({ path, fullPage: true });
    assert.ok(statSync(path).size > 5_000, `${path} has content`);
  };

  it('signs an admin in and renders every admin page under the CSP; revoking a grant works from the page', async () => {
    const { page, violations, close } = await openAs(ALICE);
    try {
      await page.goto(`${base}/admin`);
      assert.equal(new URL(page.url()).pathname, '/admin', 'back on the page after sign-in');
      assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Overview');
      // The seeded tool calls of the last minutes, from the store, in the newest hour's bar: allowed, denied, failed.
      assert.equal(await page.locator('svg.chart rect.ok').count(), 1);
      assert.equal(await page.locator('svg.chart rect.denied').count(), 1);
      assert.equal(await page.locator('svg.chart rect.err').count(), 1);
      assert.equal(await page.locator('svg.chart text.axis-title').count(), 2, 'both axes labelled');
      const barColour = await page.locator('svg.chart rect.ok').first().evaluate((element) => element.ownerDocument.defaultView?.getComputedStyle(element).fill);
      assert.notEqual(barColour, 'rgb(0, 0, 0)', 'the stylesheet loaded under the CSP');
      await screenshot(page, 'admin-overview');

      await page.getByRole('link', { name: 'Clients' }).click();
      assert.ok((await page.locator('tbody tr').count()) >= 3);
      assert.ok((await page.content()).includes('Inspector &lt;script&gt;'));
      await screenshot(page, 'admin-clients');

      await page.getByRole('link', { name: 'Tool calls' }).click();
      assert.equal(await page.locator('tbody tr').count(), 4);
      await screenshot(page, 'admin-audit');
      await page.getByLabel('Outcome').selectOption('denied');
      await page.getByRole('button', { name: 'Filter' }).click();
      assert.equal(await page.locator('tbody tr').count(), 1);

      await page.getByRole('link', { name: 'Grants' }).click();
      assert.equal(await page.locator('tbody tr').count(), 4);
      await screenshot(page, 'admin-grants');
      await page.locator(`form[action="/admin/grants/${GRANTS.bobConfigured}/revoke"] button`).click();
      await page.getByRole('status').waitFor();
      assert.match(await page.getByRole('status').innerText(), /Access revoked/);
      assert.equal(await page.locator('tbody tr').count(), 3);
      assert.equal(await h.store.get(GRANT_NAMESPACE, GRANTS.bobConfigured), undefined);
      assert.ok(await h.store.get(REVOKED_GRANT_NAMESPACE, GRANTS.bobConfigured));
      assert.deepEqual(violations, []);
    } finally {
      await close();
    }
  });

  it('shows a signed-in user their connected apps and lets them revoke one', async () => {
    const { page, violations, close } = await openAs(ALICE);
    try {
      await page.goto(`${base}/account`);
      assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Connected apps');
      assert.equal(await page.locator('tbody tr').count(), 2);
      await screenshot(page, 'account');
      await page.locator(`form[action="/account/grants/${GRANTS.aliceCimd}/revoke"] button`).click();
      await page.getByRole('status').waitFor();
      assert.equal(await page.locator('tbody tr').count(), 1);
      assert.ok(await h.store.get(REVOKED_GRANT_NAMESPACE, GRANTS.aliceCimd));
      assert.deepEqual(violations, []);
    } finally {
      await close();
    }
  });

  it('shows a non-admin the bare 403 page', async () => {
    const { page, close } = await openAs(BOB);
    try {
      const response = await page.goto(`${base}/admin/grants`);
      assert.equal(response?.status(), 403);
      assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Access was not allowed');
      assert.equal(await page.locator('nav').count(), 0);
      await screenshot(page, 'admin-forbidden');
    } finally {
      await close();
    }
  });
});
