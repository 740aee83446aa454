import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser } from 'playwright-core';
import { launchBrowser, signInWithBrowser, startDemo, startRedirectListener, type RedirectListener, type RunningDemo } from '../support/demo-harness.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';

/**
 * The same whole flow with the store replicas share: the demo on a real `redis-server` instead of SQLite —
 * client registration, consent and sign-in state, grants, sealed upstream tokens and MCP sessions all live in Redis.
 */
describe('the whole flow on a Redis store', () => {
  let redis: RedisServer;
  let demo: RunningDemo;
  let listener: RedirectListener;
  let browser: Browser;

  before(async () => {
    redis = await startRedisServer();
    listener = await startRedirectListener();
    demo = await startDemo({ redisUrl: redis.url });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
    await listener?.close();
    await redis?.stop();
  });

  it('an SDK v1 client registers, signs in and calls a tool as the signed-in user', async () => {
    const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'E2E Redis client' });
    const url = new URL(demo.mcpUrl);
    await assert.rejects(new Client({ name: 'e2e-redis', version: '1.0.0' }).connect(new StreamableHTTPClientTransport(url, { authProvider: provider })));
    assert.ok(state.authorizationUrl);
    const user = demo.users[0];
    assert.ok(user);
    const context = await browser.newContext();
    try {
      const signIn = await signInWithBrowser({ context, authorizationUrl: state.authorizationUrl.href, user, redirectUri: listener.url });
      const code = signIn.callbackUrl.searchParams.get('code');
      assert.ok(code);
      const transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
      await transport.finishAuth(code);
      const client = new Client({ name: 'e2e-redis', version: '1.0.0' });
      await client.connect(transport);
      try {
        const hello = await client.callTool({ name: 'hello', arguments: {} });
        assert.match(JSON.stringify(hello.content), new RegExp(`Hello, ${user.name}!`));
      } finally {
        await client.close();
      }
    } finally {
      await context.close();
    }
  });
});
