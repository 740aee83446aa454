import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ACCESS_TOKEN_CLOCK_SKEW_SECONDS } from '../../src/proxy/verify-access-token.ts';
import { launchBrowser, signInWithBrowser, startDemo, startRedirectListener } from '../support/demo-harness.ts';
import { preparePythonClients, runPythonClient } from './support/python-clients.ts';
import { startedForSuite } from '../support/suite-server.ts';

/**
 * Foreign clients: the official MCP Python SDK and FastMCP's client, each doing the whole flow against the demo —
 * discovery from the 401, dynamic client registration, consent and sign-in in Chromium, code exchange, tools/list,
 * tools/call — then, once the short-lived access token has expired, a refresh without the browser.
 */
const ACCESS_TOKEN_TTL_SECONDS = 4;
const REFRESH_AFTER_SECONDS = ACCESS_TOKEN_TTL_SECONDS + ACCESS_TOKEN_CLOCK_SKEW_SECONDS + 1;
const setup = preparePythonClients();

// The two clients run side by side: most of each test is waiting for its access token to expire.
describe('Python MCP clients through the gateway', { skip: setup.ready ? false : setup.reason, concurrency: true }, () => {
  const demo = startedForSuite(() => startDemo({ config: { authorization: { accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS } } }));
  const browser = startedForSuite(launchBrowser);
  const listener = startedForSuite(startRedirectListener);

  async function authorize(url: URL): Promise<URL> {
    const redirectUri = url.searchParams.get('redirect_uri');
    assert.ok(redirectUri, 'the authorization request names its redirect URI');
    const user = demo.users[0];
    assert.ok(user);
    const context = await browser.newContext();
    try {
      const signIn = await signInWithBrowser({ context, authorizationUrl: url.href, user, redirectUri });
      return signIn.callbackUrl;
    } finally {
      await context.close();
    }
  }

  function assertWholeFlow(result: Record<string, unknown>): void {
    const name = demo.users[0]?.name ?? '';
    assert.ok((result.tools as string[]).includes('hello'), `tools/list: ${String(result.tools)}`);
    assert.match(String(result.hello), new RegExp(`Hello, ${name}!`), 'tools/call as the signed-in user');
    assert.match(String(result.helloAfterRefresh), new RegExp(`Hello, ${name}!`), 'tools/call after the refresh');
    assert.equal(typeof result.clientId, 'string', 'registered (DCR)');
    assert.equal(result.accessTokenChanged, true, 'a new access token after expiry');
    assert.equal(result.refreshTokenRotated, true, 'the refresh token was rotated');
    assert.equal(result.authorizations, 1, 'the browser was needed once, not for the refresh');
  }

  it('official Python SDK (mcp 2.3.0): DCR, browser sign-in, tools, refresh', async (t) => {
    const result = await runPythonClient(['mcp', demo.mcpUrl, listener.url, String(REFRESH_AFTER_SECONDS)], { authorize, callbackOnStdin: true });
    assertWholeFlow(result);
    assert.match(String(result.protocolVersion), /^20\d\d-\d\d-\d\d$/);
    t.diagnostic(`negotiated protocol revision ${String(result.protocolVersion)}`);
  });

  it('FastMCP client (fastmcp 4.0.10): DCR, browser sign-in on its own loopback callback, tools, refresh', async () => {
    const result = await runPythonClient(['fastmcp', demo.mcpUrl, '', String(REFRESH_AFTER_SECONDS)], { authorize, callbackOnStdin: false });
    assertWholeFlow(result);
  });
});
