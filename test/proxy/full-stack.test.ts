import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { auth, Client, StreamableHTTPClientTransport, type OAuthClientProvider } from '@modelcontextprotocol/client';
import { revokeGrant } from '../../src/grants/revoked-grants.ts';
import type { McpBackend } from '../support/mcp-backends.ts';
import { CLIENT_REDIRECT, consentForm, TestBrowser, type TestServer } from '../authorization/harness.ts';
import type { TestGateway } from './harness.ts';
import { startTestStack, type TestStack } from './stack-harness.ts';

/**
 * The contract between the authorization server and the gateway, end to end: an MCP SDK client (v2) gets a token
 * from the real authorization server (discovery, DCR, PKCE, consent, fake upstream sign-in) and uses it through the
 * gateway — a replica sharing the store, keys and public URL — to call a backend at protocol 2026-07-28.
 */
let stack: TestStack;
let server: TestServer;
let gateway: TestGateway;
let backend: McpBackend;

before(async () => {
  stack = await startTestStack();
  ({ server, gateway, backend } = stack);
});
after(async () => {
  await stack?.close();
});

async function obtainToken(): Promise<string> {
  const state: { info?: unknown; tokens?: { access_token: string }; verifier?: string; url?: URL } = {};
  const provider: OAuthClientProvider = {
    redirectUrl: CLIENT_REDIRECT,
    clientMetadata: {
      client_name: 'Gateway Test Client',
      redirect_uris: [CLIENT_REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    clientInformation: () => state.info as never,
    saveClientInformation: (info) => void (state.info = info),
    tokens: () => state.tokens as never,
    saveTokens: (tokens) => void (state.tokens = tokens),
    redirectToAuthorization: (url) => void (state.url = url),
    saveCodeVerifier: (verifier) => void (state.verifier = verifier),
    codeVerifier: () => state.verifier ?? '',
  };
  const resource = `${server.publicUrl}/mcp`;
  assert.equal(await auth(provider, { serverUrl: resource }), 'REDIRECT');
  const browser = new TestBrowser();
  const page = await browser.follow(state.url!.href, server.publicUrl);
  const form = consentForm(await page.response.text());
  const approved = await browser.request(new URL(form.action, server.publicUrl).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.publicUrl },
    body: new URLSearchParams({ consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' }).toString(),
  });
  const back = await browser.follow(new URL(approved.headers.get('location') ?? '', server.publicUrl).href, server.publicUrl);
  const callback = new URL(back.url);
  const code = callback.searchParams.get('code') ?? '';
  assert.equal(await auth(provider, { serverUrl: resource, authorizationCode: code, iss: callback.searchParams.get('iss') ?? undefined }), 'AUTHORIZED');
  return state.tokens!.access_token;
}

describe('authorization server → gateway → backend', () => {
  it('an SDK client uses an issued token through the gateway; revoking its grant cuts it off', async () => {
    const token = await obtainToken();
    const client = new Client({ name: 'full-stack', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(gateway.url + '/mcp'), { requestInit: { headers: { authorization: `Bearer ${token}` } } }),
    );
    let grantId: string;
    try {
      const { tools } = await client.listTools();
      assert.ok(tools.some((tool) => tool.name === 'whoami'));
      const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: Array<{ text: string }> };
      const who = JSON.parse(result.content[0]!.text) as Record<string, unknown>;
      assert.equal(who.error, undefined, String(who.error));
      assert.equal(who.aud, `${server.publicUrl}/mcp`);
      assert.equal(typeof who.sub, 'string');
      assert.equal(typeof who.gid, 'string');
      grantId = who.gid as string;
    } finally {
      await client.close();
    }
    for (const headers of backend.seenHeaders) assert.ok(!JSON.stringify(headers).includes(token));

    await revokeGrant(server.store, grantId, { ttlSeconds: 600 });
    await gateway.revokedGrants.resync();
    const refused = await fetch(gateway.url + '/mcp', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
  });
});
