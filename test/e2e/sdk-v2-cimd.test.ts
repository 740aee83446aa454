import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { Browser } from 'playwright-core';
import { launchBrowser, signInWithBrowser, startDemo, startRedirectListener, type RedirectListener, type RunningDemo } from '../support/demo-harness.ts';
import { startCimdHost, type CimdHost } from './support/cimd-host.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';

/**
 * The reference MCP TypeScript SDK (v2) against the running demo, as a new-generation client: protocol 2026-07-28,
 * registered by Client ID Metadata Document (no registration call), discovery from the first 401, our consent page
 * and the local IdP's sign-in in headless Chromium, then tools through the gateway — `get_graph_user_details` reaches
 * the directory API through the sample server's RFC 8693 exchange and the gateway's on-behalf-of call, with the
 * gateway authenticating to the IdP by a federated assertion (no client secret anywhere).
 */
const PROTOCOL = '2026-07-28';

describe('MCP SDK v2 client, CIMD, Streamable HTTP 2026-07-28', () => {
  let demo: RunningDemo;
  let cimd: CimdHost;
  let listener: RedirectListener;
  let browser: Browser;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-e2e-cimd-'));
    listener = await startRedirectListener();
    cimd = await startCimdHost({
      caFile: join(dir, 'cimd-ca.pem'),
      document: (clientId) => ({
        client_id: clientId,
        client_name: 'E2E SDK v2 client',
        redirect_uris: [listener.url],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    });
    demo = await startDemo({
      // Only the test host is allowed on loopback (cimd.assemble), not every loopback address as the plain demo does.
      config: { authorization: { clientMetadataDocuments: { allowLoopback: false, trustedCaFile: cimd.caFile } } },
      assemble: cimd.assemble,
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
    await cimd?.close();
    await listener?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  type BrowserContext = Awaited<ReturnType<Browser['newContext']>>;
  const newClient = () => new Client({ name: 'e2e-sdk-v2', version: '1.0.0' }, { versionNegotiation: { mode: { pin: PROTOCOL } } });

  /**
   * The SDK's own flow: connect → 401 → discovery → authorization URL; the browser answers; finishAuth; connect again.
   * `session.authorizeAgain()` repeats the browser leg for the URL the SDK produced last (step-up after a 403).
   */
  async function connectAs(options: { username: string; context: BrowserContext; screenshotPrefix?: string }) {
    const user = demo.users.find((candidate) => candidate.username === options.username);
    assert.ok(user);
    const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'E2E SDK v2 client', clientMetadataUrl: cimd.clientId });
    await assert.rejects(newClient().connect(new StreamableHTTPClientTransport(new URL(demo.mcpUrl), { authProvider: provider })));
    assert.ok(state.authorizationUrl, 'the SDK was sent to authorize after the 401');
    assert.equal(state.authorizationUrl.origin, new URL(demo.publicUrl).origin, 'discovered our authorization server from the PRM');
    assert.equal(state.authorizationUrl.searchParams.get('client_id'), cimd.clientId, 'CIMD: the URL is the client id');
    assert.equal(state.authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(state.authorizationUrl.searchParams.get('resource'), demo.mcpUrl);

    const session = {
      user,
      state,
      client: newClient(),
      signIns: [] as Awaited<ReturnType<typeof signInWithBrowser>>[],
      async authorizeAgain(screenshotPrefix?: string) {
        assert.ok(state.authorizationUrl);
        const signIn = await signInWithBrowser({
          context: options.context,
          authorizationUrl: state.authorizationUrl.href,
          user,
          redirectUri: listener.url,
          ...(screenshotPrefix ? { screenshotPrefix } : {}),
        });
        session.signIns.push(signIn);
        assert.equal(signIn.callbackUrl.searchParams.get('iss'), demo.publicUrl, 'RFC 9207 iss on the authorization response');
        const transport = new StreamableHTTPClientTransport(new URL(demo.mcpUrl), { authProvider: provider });
        await transport.finishAuth(signIn.callbackUrl.searchParams);
        assert.ok(state.tokens?.access_token);
        await session.client.close().catch(() => {});
        session.client = newClient();
        await session.client.connect(transport);
      },
      /**
       * `get_graph_user_details` needs `graph:read`, more than the route's challenge asks for: the first call gets 403
       * insufficient_scope and the SDK re-authorizes with the union of scopes (step-up), as VS Code does.
       */
      async graphProfile(): Promise<Record<string, unknown>> {
        const redirects = state.redirects;
        try {
          return profileOf(await session.client.callTool({ name: 'get_graph_user_details', arguments: {} }));
        } catch (error) {
          assert.equal(state.redirects, redirects + 1, `the call failed without a step-up: ${String(error)}`);
          assert.ok(state.authorizationUrl?.searchParams.get('scope')?.split(' ').includes('graph:read'), 'step-up asks for graph:read');
          await session.authorizeAgain();
          return profileOf(await session.client.callTool({ name: 'get_graph_user_details', arguments: {} }));
        }
      },
    };
    await session.authorizeAgain(options.screenshotPrefix);
    return session;
  }

  const profileOf = (result: unknown): Record<string, unknown> => {
    const structured = (result as { structuredContent?: Record<string, unknown> }).structuredContent;
    assert.ok(structured, `structured tool result expected, got ${JSON.stringify(result).slice(0, 300)}`);
    return structured;
  };

  it('discovers, is approved and signed in, lists tools and gets the signed-in user\'s directory profile', async () => {
    const context = await browser.newContext();
    try {
      const session = await connectAs({ username: 'adele', context, screenshotPrefix: 'e2e' });
      const { user, state } = session;
      try {
        assert.deepEqual(session.signIns[0]?.pages, ['consent', 'sign-in'], 'consent first (before the IdP), then the sign-in form');
        assert.ok(cimd.fetches >= 1, 'the gateway fetched the client metadata document');
        assert.equal(state.clientInformation?.client_id, cimd.clientId, 'the client id is the document URL, not a registered one');
        assert.equal(session.client.getNegotiatedProtocolVersion(), PROTOCOL, 'spoke 2026-07-28 through the gateway');
        // Tools the token may not call are filtered from the list. The demo route's challenge asks for `mcp:tools`
        // only, so `get_graph_user_details` (needs `graph:read`) appears after a step-up authorization.
        const names = async () => (await session.client.listTools()).tools.map((tool) => tool.name);
        const before = await names();
        for (const name of ['hello', 'echo', 'status']) assert.ok(before.includes(name), `${name} in ${before.join(', ')}`);
        const stepUpNeeded = !before.includes('get_graph_user_details');
        const profile = await session.graphProfile();
        assert.equal(session.signIns.length, stepUpNeeded ? 2 : 1, 'at most one step-up authorization, for graph:read');
        assert.ok((await names()).includes('get_graph_user_details'), 'listed once the token carries graph:read');
        assert.equal(profile.id, user.id);
        assert.equal(profile.displayName, user.name);
        assert.equal(profile.mail, user.email);
      } finally {
        await session.client.close();
      }
    } finally {
      await context.close();
    }
  });

  it('a second user in another browser sees their own profile, not the first user\'s', async () => {
    const context = await browser.newContext();
    try {
      const session = await connectAs({ username: 'alex', context });
      try {
        const profile = await session.graphProfile();
        assert.equal(profile.id, session.user.id);
        assert.equal(profile.displayName, 'Alex Wilber');
        assert.notEqual(profile.id, demo.users[0]?.id);
      } finally {
        await session.client.close();
      }
    } finally {
      await context.close();
    }
  });

  it('does not ask for consent twice in a browser that approved this client', async () => {
    const context = await browser.newContext();
    try {
      const first = await connectAs({ username: 'adele', context });
      await first.client.close();
      assert.ok(first.signIns[0]?.pages.includes('consent'));
      const second = await connectAs({ username: 'adele', context });
      try {
        const pages = second.signIns[0]?.pages ?? [];
        assert.ok(!pages.includes('consent'), `pages seen the second time: ${pages.join(', ') || 'none'}`);
        const hello = await second.client.callTool({ name: 'hello', arguments: { name: 'Ada' } });
        assert.equal(hello.isError ?? false, false);
      } finally {
        await second.client.close();
      }
    } finally {
      await context.close();
    }
  });

  it('a denied consent reaches the client as access_denied, and the client gets no token', async () => {
    const context = await browser.newContext();
    try {
      const user = demo.users[0];
      assert.ok(user);
      const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'E2E SDK v2 client', clientMetadataUrl: cimd.clientId });
      const client = new Client({ name: 'e2e-sdk-v2', version: '1.0.0' }, { versionNegotiation: { mode: { pin: PROTOCOL } } });
      await assert.rejects(client.connect(new StreamableHTTPClientTransport(new URL(demo.mcpUrl), { authProvider: provider })));
      assert.ok(state.authorizationUrl);
      const denied = await signInWithBrowser({ context, authorizationUrl: state.authorizationUrl.href, user, redirectUri: listener.url, decision: 'deny' });
      assert.deepEqual(denied.pages, ['consent'], 'denying never reaches the identity provider');
      assert.equal(denied.callbackUrl.searchParams.get('error'), 'access_denied');
      assert.equal(denied.callbackUrl.searchParams.get('iss'), demo.publicUrl);
      assert.equal(denied.callbackUrl.searchParams.get('code'), null);
      // The SDK itself reports it: handing it the callback fails with the OAuth error, and it holds no token.
      const transport = new StreamableHTTPClientTransport(new URL(demo.mcpUrl), { authProvider: provider });
      await assert.rejects(transport.finishAuth(denied.callbackUrl.searchParams), (error: Error) => {
        assert.match(`${error.name} ${error.message} ${String((error as { code?: unknown }).code)}`, /access_denied|denied/i);
        return true;
      });
      assert.equal(state.tokens, undefined);
    } finally {
      await context.close();
    }
  });
});
