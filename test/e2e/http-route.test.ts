import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { auth } from '@modelcontextprotocol/client';
import { launchBrowser, startDemo, startRedirectListener, type DemoUser, authorizationCodeFor } from '../support/demo-harness.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';
import { startedForSuite } from '../support/suite-server.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { AUDIT_NAMESPACE } from '../../src/proxy/audit.ts';
import type { AuditRecord } from '../../src/records/audit.ts';

/**
 * The demo's plain HTTP route (`/graph`, `type: http`): the sample server's REST endpoints behind the same sign-in.
 * A client discovers it from its own 401 and protected-resource metadata, gets a token whose audience is that route,
 * and `GET /graph/me` returns the signed-in user's directory profile — the same profile `get_graph_user_details`
 * returns over MCP, obtained by the same RFC 8693 + on-behalf-of exchange.
 */
describe('plain HTTP route in front of the sample server', () => {
  const listener = startedForSuite(startRedirectListener);
  const demo = startedForSuite(() => startDemo());
  const browser = startedForSuite(launchBrowser);
  let graphUrl: string;

  before(() => {
    graphUrl = `${demo.publicUrl}/graph`;
  });

  /** The whole OAuth flow (discovery from `resourceUrl`, DCR, consent, sign-in, code exchange) as `user`. */
  async function tokenFor(resourceUrl: string, user: DemoUser): Promise<string> {
    const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'REST client (e2e)' });
    assert.equal(await auth(provider, { serverUrl: resourceUrl }), 'REDIRECT');
    assert.ok(state.authorizationUrl);
    assert.equal(state.authorizationUrl.searchParams.get('resource'), resourceUrl, 'the client asks for this route as its resource');
    const { code, iss } = await authorizationCodeFor(browser, { authorizationUrl: state.authorizationUrl.href, user, redirectUri: listener.url });
    assert.equal(await auth(provider, { serverUrl: resourceUrl, authorizationCode: code, ...(iss ? { iss } : {}) }), 'AUTHORIZED');
    assert.ok(state.tokens?.access_token);
    return state.tokens.access_token;
  }

  it('answers 401 with a challenge naming its own resource metadata', async () => {
    const response = await fetch(`${graphUrl}/me`);
    assert.equal(response.status, 401);
    const challenge = response.headers.get('www-authenticate') ?? '';
    assert.match(challenge, new RegExp(`resource_metadata="${demo.publicUrl}/\\.well-known/oauth-protected-resource/graph"`));
    const metadata = (await (await fetch(`${demo.publicUrl}/.well-known/oauth-protected-resource/graph`)).json()) as { resource: string };
    assert.equal(metadata.resource, graphUrl);
  });

  it('GET /graph/me returns the signed-in user\'s profile; a token for /mcp is refused there', async () => {
    const user = demo.users[1];
    assert.ok(user);
    const token = await tokenFor(graphUrl, user);

    const me = await fetch(`${graphUrl}/me`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(me.status, 200);
    const profile = (await me.json()) as Record<string, unknown>;
    assert.equal(profile.id, user.id);
    assert.equal(profile.displayName, user.name);
    assert.equal(profile.mail, user.email);
    assert.doesNotMatch(JSON.stringify(profile), new RegExp(token.slice(-24).replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')), 'no token in the body');

    // The sample server obtained the user's Graph token at /token (RFC 8693): that exchange is in the audit trail.
    const store = await createSqliteStore({ path: demo.sqlitePath!, clock: systemClock, purgeIntervalMs: 0 });
    try {
      let exchanges: AuditRecord[] = [];
      for (let tries = 0; exchanges.length === 0 && tries < 100; tries++) {
        exchanges = (await store.list<AuditRecord>(AUDIT_NAMESPACE)).map((entry) => entry.value).filter((record) => record.method?.startsWith('token-exchange') === true);
        if (exchanges.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const mine = exchanges.find((record) => record.outcome === 'allowed' && record.route === '/graph');
      assert.ok(mine, JSON.stringify(exchanges));
      assert.equal(mine.method, 'token-exchange graph');
      assert.equal(mine.status, 200);
      assert.ok(mine.user && mine.client, 'who, for whom');
      // The REST call's own record names the resource it touched, and the request id its log line and answer carry.
      let call: AuditRecord | undefined;
      for (let tries = 0; call === undefined && tries < 100; tries++) {
        call = (await store.list<AuditRecord>(AUDIT_NAMESPACE)).map((entry) => entry.value).find((record) => record.requestId === me.headers.get('x-request-id'));
        if (call === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(call, 'the request id is in the audit record');
      assert.equal(call.method, 'GET /graph/me');
      assert.equal(call.outcome, 'allowed');
    } finally {
      await store.close();
    }

    const hello = await fetch(`${graphUrl}/hello`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(hello.status, 200);
    assert.match(await hello.text(), new RegExp(user.name));

    // Audience binding: the same user's token for the MCP route is useless at the HTTP route, and vice versa.
    const mcpToken = await tokenFor(demo.mcpUrl, user);
    const crossed = await fetch(`${graphUrl}/me`, { headers: { authorization: `Bearer ${mcpToken}` } });
    assert.equal(crossed.status, 401);
    assert.match(crossed.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    const reverse = await fetch(demo.mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    assert.equal(reverse.status, 401);
  });

  it('a token for /graph reaches only the REST endpoints, never the sample server\'s MCP endpoints behind it', async () => {
    const user = demo.users[0];
    assert.ok(user);
    const token = await tokenFor(graphUrl, user);
    const authorization = `Bearer ${token}`;
    // Under /graph the route forwards to the sample server's REST base path, which holds no MCP endpoint: the MCP
    // route's scopes, per-tool policies and tools/list filter cannot be sidestepped through the HTTP route.
    const call = await fetch(`${graphUrl}/mcp`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'through the side door' } } }),
    });
    const callText = await call.text();
    assert.equal(call.status, 404, callText);
    assert.doesNotMatch(callText, /through the side door/);
    const list = await fetch(`${graphUrl}/mcp`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }),
    });
    assert.equal(list.status, 404);
    assert.doesNotMatch(await list.text(), /get_graph_user_details/);
    const sse = await fetch(`${graphUrl}/sse`, { headers: { authorization, accept: 'text/event-stream' } });
    assert.equal(sse.status, 404);
    assert.doesNotMatch(sse.headers.get('content-type') ?? '', /event-stream/);
    assert.doesNotMatch(await sse.text(), /event: endpoint/);
    const message = await fetch(`${graphUrl}/messages?sessionId=x`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(message.status, 404);
    await message.text();
    // The public REST URLs are unchanged.
    const status = await fetch(`${graphUrl}/status`, { headers: { authorization } });
    assert.equal(status.status, 200);
    assert.equal(((await status.json()) as { user: { subject: string } }).user.subject.endsWith(user.id), true);
  });
});
