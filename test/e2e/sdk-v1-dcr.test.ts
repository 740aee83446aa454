import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { launchBrowser, signInWithBrowser, startDemo, startRedirectListener } from '../support/demo-harness.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';
import { ACCESS_TOKEN_CLOCK_SKEW_SECONDS } from '../../src/proxy/verify-access-token.ts';
import { startedForSuite } from '../support/suite-server.ts';

/**
 * The previous SDK generation (`@modelcontextprotocol/sdk` v1, protocol 2025-11-25), as most deployed clients are
 * today: dynamic client registration (RFC 7591), Streamable HTTP with sessions, then the legacy HTTP+SSE transport
 * with the same tokens, and a silent refresh once the (deliberately short-lived) access token has expired.
 */
const ACCESS_TOKEN_TTL_SECONDS = 4;
/**
 * The gateway's bearer check tolerates a few seconds of clock skew after `exp` (while the identity assertion it
 * forwards stays valid); past that window an expired token gets the 401 that makes the client refresh.
 */
const GATEWAY_CLOCK_SKEW_SECONDS = ACCESS_TOKEN_CLOCK_SKEW_SECONDS;

describe('MCP SDK v1 client, DCR, Streamable HTTP and legacy SSE, refresh', () => {
  const listener = startedForSuite(startRedirectListener);
  const demo = startedForSuite(() => startDemo({ config: { authorization: { accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS } } }));
  const browser = startedForSuite(launchBrowser);
  const context = startedForSuite(() => browser.newContext());
  const oauth = { provider: undefined as unknown as ReturnType<typeof createMemoryOAuthProvider>['provider'], state: undefined as unknown as ReturnType<typeof createMemoryOAuthProvider>['state'] };

  before(() => {
    Object.assign(oauth, createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'E2E SDK v1 client' }));
  });

  const newClient = () => new Client({ name: 'e2e-sdk-v1', version: '1.0.0' });
  const mcpUrl = () => new URL(demo.mcpUrl);

  it('registers dynamically, signs in and calls tools over Streamable HTTP (2025-11-25)', async () => {
    const { provider, state } = oauth;
    await assert.rejects(newClient().connect(new StreamableHTTPClientTransport(mcpUrl(), { authProvider: provider })));
    assert.ok(state.clientInformation?.client_id, 'the SDK registered by DCR');
    assert.notEqual(state.clientInformation.client_id, listener.url);
    assert.ok(state.authorizationUrl);
    assert.equal(state.authorizationUrl.searchParams.get('client_id'), state.clientInformation.client_id);

    const user = demo.users[1];
    assert.ok(user);
    const signIn = await signInWithBrowser({ context, authorizationUrl: state.authorizationUrl.href, user, redirectUri: listener.url });
    const code = signIn.callbackUrl.searchParams.get('code');
    assert.ok(code, signIn.callbackUrl.href);
    const transport = new StreamableHTTPClientTransport(mcpUrl(), { authProvider: provider });
    await transport.finishAuth(code);
    assert.ok(state.tokens?.access_token && state.tokens.refresh_token, 'an access token and a refresh token');

    const client = newClient();
    await client.connect(transport);
    try {
      assert.equal(transport.protocolVersion ?? LATEST_PROTOCOL_VERSION, '2025-11-25');
      assert.ok(transport.sessionId, 'a 2025-11-25 session through the gateway');
      const tools = await client.listTools();
      assert.ok(tools.tools.some((tool) => tool.name === 'hello'));
      const hello = await client.callTool({ name: 'hello', arguments: { name: 'Ada' } });
      assert.match(JSON.stringify(hello.content), /Ada/);
      // The sample server knows who called through the gateway's identity assertion, never from arguments.
      const status = await client.callTool({ name: 'status', arguments: {} });
      assert.equal(status.isError ?? false, false);
    } finally {
      await client.close();
    }
  });

  it('uses the same tokens over the legacy HTTP+SSE transport', async () => {
    const { provider, state } = oauth;
    const redirects = state.redirects;
    const client = newClient();
    const transport = new SSEClientTransport(new URL(`${demo.mcpUrl}/sse`), { authProvider: provider });
    await client.connect(transport);
    try {
      const echoed = await client.callTool({ name: 'echo', arguments: { message: 'over legacy SSE' } });
      assert.match(JSON.stringify(echoed.content), /over legacy SSE/);
      assert.equal(state.redirects, redirects, 'no new authorization was needed');
    } finally {
      await client.close();
    }
  });

  it('answers an expired access token with 401 invalid_token (so clients refresh), not 502', async () => {
    const token = oauth.state.tokens?.access_token;
    assert.ok(token);
    // Past the skew window: inside it the token is still served (with a valid assertion, see test/proxy/expiry-window).
    await sleep((ACCESS_TOKEN_TTL_SECONDS + GATEWAY_CLOCK_SKEW_SECONDS + 1) * 1000);
    const response = await fetch(demo.mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
  });

  it('refreshes silently once the access token has expired', async () => {
    const { provider, state } = oauth;
    const before = { ...state.tokens };
    const redirects = state.redirects;
    // Let the short-lived access token expire, beyond the verifier's clock-skew allowance.
    await sleep((ACCESS_TOKEN_TTL_SECONDS + GATEWAY_CLOCK_SKEW_SECONDS + 1) * 1000);
    const client = newClient();
    await client.connect(new StreamableHTTPClientTransport(mcpUrl(), { authProvider: provider }));
    try {
      const hello = await client.callTool({ name: 'hello', arguments: {} });
      assert.equal(hello.isError ?? false, false);
    } finally {
      await client.close();
    }
    assert.notEqual(state.tokens?.access_token, before.access_token, 'a new access token');
    assert.notEqual(state.tokens?.refresh_token, before.refresh_token, 'the refresh token was rotated');
    assert.equal(state.redirects, redirects, 'without sending the user back to the browser');
  });
});
