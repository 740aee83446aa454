import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { auth as aiSdkAuth, createMCPClient, type OAuthClientProvider as AiSdkOAuthClientProvider } from '@ai-sdk/mcp';
import { Client as Client20250618 } from 'mcp-sdk-2025-06-18/client/index.js';
import { StreamableHTTPClientTransport as Transport20250618 } from 'mcp-sdk-2025-06-18/client/streamableHttp.js';
import { Client as Client20250326 } from 'mcp-sdk-2025-03-26/client/index.js';
import { StreamableHTTPClientTransport as Transport20250326 } from 'mcp-sdk-2025-03-26/client/streamableHttp.js';
import { startRedirectListener, type RedirectListener } from '../support/demo-harness.ts';
import { clientRow, installedVersion, type ClientMatrixRow } from './support/client-matrix.ts';
import { REFRESH_AFTER_MS, startForeignClientStage, type ForeignClientStage } from './support/foreign-client-demo.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';

/**
 * Foreign npm MCP clients used as libraries, each running its own OAuth code against the demo: the Vercel AI SDK's
 * MCP client and two older releases of the TypeScript SDK v1 that negotiate 2025-06-18 and 2025-03-26 (the latter
 * predates protected resource metadata and sends neither `resource` nor `scope`). DCR, Chromium sign-in, a tool call
 * as the signed-in user, and a silent refresh once the access token has expired.
 */
describe('npm MCP client libraries doing their own OAuth through the gateway', { concurrency: true }, () => {
  let stage: ForeignClientStage;
  let listener: RedirectListener;
  before(async () => {
    stage = await startForeignClientStage('npm-sdk-clients');
    listener = await startRedirectListener();
  });
  after(async () => {
    await listener?.close();
    await stage?.close();
  });

  const helloText = () => new RegExp(`Hello, ${stage.demo.users[0]?.name}!`);
  const textOf = (result: unknown): string => JSON.stringify((result as { content?: unknown }).content);

  /** The browser leg for the URL the client produced; returns the code and `iss` the client's callback got. */
  async function browserLeg(state: ReturnType<typeof createMemoryOAuthProvider>['state'], row: ClientMatrixRow) {
    assert.ok(state.authorizationUrl, `${row.key} was sent to authorize after the 401`);
    assert.equal(state.authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(state.clientInformation?.client_id, `${row.key} registered by DCR`);
    const callback = await stage.authorize(state.authorizationUrl);
    const code = callback.searchParams.get('code');
    assert.ok(code, callback.href);
    return { code, iss: callback.searchParams.get('iss') ?? undefined, authorizationUrl: state.authorizationUrl };
  }

  /** The refresh the client did on its own: new access token, rotated refresh token, no new authorization. */
  function assertSilentRefresh(state: ReturnType<typeof createMemoryOAuthProvider>['state'], before: { access?: string; refresh?: string }) {
    assert.notEqual(state.tokens?.access_token, before.access, 'a new access token');
    assert.notEqual(state.tokens?.refresh_token, before.refresh, 'the refresh token was rotated');
    assert.equal(state.redirects, 1, 'the browser was needed once, not for the refresh');
  }
  const tokensOf = (state: ReturnType<typeof createMemoryOAuthProvider>['state']) => ({ access: state.tokens?.access_token, refresh: state.tokens?.refresh_token });

  const aiSdk = clientRow('ai-sdk');
  it(`Vercel AI SDK MCP client (@ai-sdk/mcp ${aiSdk.package.version}): DCR, its authProvider, tools/call, silent refresh`, async () => {
    assert.equal(installedVersion(aiSdk), aiSdk.package.version);
    assert.deepEqual(aiSdk.registrations, ['DCR'], 'only DCR is run here: the matrix may claim no other');
    const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'E2E AI SDK client' });
    const authProvider = provider as unknown as AiSdkOAuthClientProvider;
    const connect = () => createMCPClient({ transport: { type: 'http', url: stage.demo.mcpUrl, authProvider } });
    await assert.rejects(connect(), /unauthori[sz]ed/i);
    const { code, iss, authorizationUrl } = await browserLeg(state, aiSdk);
    assert.equal(authorizationUrl.searchParams.get('resource'), stage.demo.mcpUrl);
    assert.equal(await aiSdkAuth(authProvider, { serverUrl: stage.demo.mcpUrl, authorizationCode: code, ...(iss ? { callbackIssuer: iss } : {}) }), 'AUTHORIZED');
    const client = await connect();
    try {
      assert.equal(client.initializeResult.protocolVersion, aiSdk.revision);
      assert.match(textOf(await client.callTool({ name: 'hello', arguments: {} })), helloText());
      const before = tokensOf(state);
      await sleep(REFRESH_AFTER_MS);
      assert.match(textOf(await client.callTool({ name: 'hello', arguments: {} })), helloText());
      assertSilentRefresh(state, before);
    } finally {
      await client.close();
    }
  });

  /**
   * The revision the server answered `initialize` with, which the client accepted (1.11.5's transport does not
   * expose it): the transport's message handler, as the Client installs it, is observed on the way in.
   */
  function observeInitializeResult(transport: object): { protocolVersion?: string } {
    const seen: { protocolVersion?: string } = {};
    let handler: ((message: unknown, ...rest: unknown[]) => void) | undefined;
    Object.defineProperty(transport, 'onmessage', {
      configurable: true,
      get: () => handler,
      set: (next?: (message: unknown, ...rest: unknown[]) => void) => {
        handler = next && ((message, ...rest) => {
          const version = (message as { result?: { protocolVersion?: unknown } }).result?.protocolVersion;
          if (typeof version === 'string') seen.protocolVersion = version;
          next(message, ...rest);
        });
      },
    });
    return seen;
  }

  const olderSdks = [
    { row: clientRow('sdk-2025-06-18'), Client: Client20250618, Transport: Transport20250618, sendsResourceAndScope: true },
    { row: clientRow('sdk-2025-03-26'), Client: Client20250326, Transport: Transport20250326, sendsResourceAndScope: false },
  ];
  for (const { row, Client, Transport, sendsResourceAndScope } of olderSdks) {
    it(`MCP SDK ${row.package.version} (${row.revision}): DCR, tools/call, silent refresh`, async () => {
      assert.equal(installedVersion(row), row.package.version);
      assert.deepEqual(row.registrations, ['DCR'], 'only DCR is run here: the matrix may claim no other');
      const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: `E2E SDK ${row.package.version}` });
      const url = new URL(stage.demo.mcpUrl);
      const newClient = () => new Client({ name: `e2e-sdk-${row.package.version}`, version: '1.0.0' });
      await assert.rejects(newClient().connect(new Transport(url, { authProvider: provider })));
      const { code, authorizationUrl } = await browserLeg(state, row);
      if (sendsResourceAndScope) {
        assert.equal(authorizationUrl.searchParams.get('resource'), stage.demo.mcpUrl);
        assert.ok(authorizationUrl.searchParams.get('scope'), 'the scope from the 401 challenge');
      } else {
        assert.equal(authorizationUrl.searchParams.get('resource'), null, `${row.package.version} sends no resource`);
        assert.equal(authorizationUrl.searchParams.get('scope'), null, `${row.package.version} sends no scope`);
      }
      const transport = new Transport(url, { authProvider: provider });
      const initializeResult = observeInitializeResult(transport);
      await transport.finishAuth(code);
      const client = newClient();
      await client.connect(transport);
      try {
        assert.equal(initializeResult.protocolVersion, row.revision, 'the negotiated revision');
        assert.ok(transport.sessionId, 'a session through the gateway');
        assert.match(textOf(await client.callTool({ name: 'hello', arguments: {} })), helloText());
        const before = tokensOf(state);
        await sleep(REFRESH_AFTER_MS);
        assert.match(textOf(await client.callTool({ name: 'hello', arguments: {} })), helloText());
        assertSilentRefresh(state, before);
      } finally {
        await client.close();
      }
    });
  }
});
