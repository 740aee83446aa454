import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Browser } from 'playwright-core';
import { launchBrowser, skipWithoutChromium } from '../support/browser.ts';
import { authorizeUrl, CLIENT_REDIRECT, pkcePair, registerPublicClient, startAuthorizationServer, type TestServer, authorizationParams } from './harness.ts';

const SCREENSHOT = 'test-artifacts/consent-page.png';

/** The consent page in a real browser: it renders without script, its CSP holds, and Approve completes the flow. */
describe('consent page in a real browser', { skip: skipWithoutChromium }, () => {
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    server = await startAuthorizationServer({
      routes: [
        {
          path: '/mcp',
          backend: 'http://127.0.0.1:9/',
          scopes: { 'mcp:tools': 'Use the tools of the Graph MCP server', 'mcp:read': 'Read your profile through the Graph MCP server' },
        },
      ],
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows the consent page, then Approve returns a code with iss to the client', async () => {
    const client = await registerPublicClient(server, { client_name: 'Visual Studio Code', logo_uri: undefined });
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 760, height: 900 } });
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

    const { challenge } = pkcePair();
    await page.goto(
      authorizeUrl(server, authorizationParams(server, client.client_id, challenge, { scope: 'mcp:tools mcp:read', state: 'browser-state' })),
    );
    await page.getByRole('heading', { level: 1 }).waitFor();
    // A dynamically registered client is unverified: the product name it chose carries the mark beside it.
    assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /Visual Studio Code unverified wants to access your account/);
    assert.equal(await page.locator('.redirect-host').innerText(), '127.0.0.1:53682');
    assert.match(await page.getByRole('alert').innerText(), /Unverified application/);
    const background = await page.locator('button.primary').evaluate((element) => element.ownerDocument.defaultView?.getComputedStyle(element).backgroundColor);
    assert.notEqual(background, 'rgba(0, 0, 0, 0)', 'the stylesheet loaded under the CSP');
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(statSync(SCREENSHOT).size > 10_000);

    await page.getByRole('button', { name: 'Approve' }).click();
    await page.waitForURL(`${new URL(CLIENT_REDIRECT).origin}/**`);
    assert.ok(clientRedirect, 'the browser was sent back to the client');
    assert.ok(clientRedirect.searchParams.get('code'));
    assert.equal(clientRedirect.searchParams.get('iss'), server.publicUrl);
    assert.equal(clientRedirect.searchParams.get('state'), 'browser-state');
    assert.deepEqual(violations, []);
    await context.close();
  });

  it('refuses to be framed', async () => {
    const client = await registerPublicClient(server);
    const context = await browser.newContext();
    const page = await context.newPage();
    const { challenge } = pkcePair();
    const target = authorizeUrl(server, {
      client_id: client.client_id,
      redirect_uri: CLIENT_REDIRECT,
      response_type: 'code',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    // The framing page comes from another origin on this machine (localhost vs 127.0.0.1): a public origin would be
    // stopped by Private Network Access before our headers are even tested.
    const attacker = createServer((request, response) => {
      const body = request.url === '/control'
        ? '<p>framed content is visible</p>'
        : `<iframe id="control" src="/control"></iframe><iframe id="target" src="${target}"></iframe>`;
      response.writeHead(200, { 'content-type': 'text/html' }).end(body);
    });
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    attacker.unref();
    const refusals: string[] = [];
    page.on('console', (message) => {
      if (/frame/i.test(message.text()) && /refused|violates|blocked/i.test(message.text())) refusals.push(message.text());
    });
    await page.goto(`http://localhost:${(attacker.address() as AddressInfo).port}/frame`);
    await page.waitForLoadState('load');
    const textOf = async (id: string) => {
      const handle = await page.locator(`#${id}`).elementHandle();
      const frame = await handle?.contentFrame();
      return frame ? await frame.evaluate('document.body ? document.body.innerText : ""').catch(() => '') : '';
    };
    assert.match(String(await textOf('control')), /framed content is visible/, 'control: a frameable page is readable');
    assert.doesNotMatch(String(await textOf('target')), /wants to access your account/);
    assert.ok(refusals.some((text) => /frame-ancestors 'none'|X-Frame-Options/.test(text)), refusals.join('\n'));
    await context.close();
    await new Promise((resolve) => attacker.close(resolve));
  });
});
