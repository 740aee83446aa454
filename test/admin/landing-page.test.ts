import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { configSchema } from '../../src/config/schema.ts';
import { buildServer } from '../../src/server/app.ts';
import { createLandingPlugin } from '../../src/admin/landing-page.ts';
import { createServerTestContext } from '../support/server-context.ts';

/** `/` tells a person what this gateway protects and how to connect; unknown pages are pages, API 404s stay JSON. */
describe('landing page', () => {
  let app: FastifyInstance;
  const publicUrl = 'https://gw.example.com';

  before(async () => {
    const { ctx } = createServerTestContext({ publicUrl });
    const routes = configSchema.parse({
      routes: [
        { path: '/mcp', backend: 'http://10.0.0.5:3000/mcp', scopes: { 'mcp:tools': 'Use <the> tools & more <script>alert(1)</script>' } },
        { path: '/graph', type: 'http', backend: 'http://10.0.0.6:4000' },
      ],
    }).routes;
    ctx.config = { ...ctx.config, routes };
    app = await buildServer(ctx, { plugins: [createLandingPlugin(ctx)] });
  });
  after(async () => {
    await app.close();
  });

  it('lists each route\'s public URL, its scopes and client snippets, escaped, without backend addresses', async () => {
    const response = await app.inject({ url: '/', headers: { accept: 'text/html' } });
    assert.equal(response.statusCode, 200);
    assert.match(response.headers['content-type'] ?? '', /^text\/html/);
    assert.match(String(response.headers['content-security-policy']), /default-src 'none'/);
    const body = response.body;
    assert.ok(body.includes('<code>https://gw.example.com/mcp</code>'));
    assert.ok(body.includes('<code>https://gw.example.com/graph</code>'));
    assert.ok(body.includes('Use &lt;the&gt; tools &amp; more'));
    for (const client of ['VS Code', 'Claude Code', 'Cursor', 'MCP Inspector']) assert.ok(body.includes(client), client);
    assert.ok(body.includes('claude mcp add --transport http gatehouse-mcp https://gw.example.com/mcp'));
    assert.ok(body.includes('<code>https://gw.example.com/mcp/sse</code>'), 'the older transport\'s URL, where the route serves it');
    assert.ok(!body.includes('/graph/sse'), 'not for a REST route');
    assert.ok(body.includes('&quot;url&quot;: &quot;https://gw.example.com/mcp&quot;'), 'the JSON snippets are escaped');
    assert.ok(!body.includes('<script>'), 'a hostile description is escaped');
    assert.ok(!/10\.0\.0\./.test(body), 'backend addresses stay private');
    assert.ok(body.includes('href="/gatehouse.css"') || body.includes('/assets/gatehouse.css'), 'the shared stylesheet');
  });

  it('serves a favicon', async () => {
    const response = await app.inject({ url: '/favicon.ico' });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], 'image/svg+xml');
    assert.match(response.body, /^<svg /);
  });

  it('answers a browser\'s unknown page with the styled page, and every API client with JSON', async () => {
    const page = await app.inject({ url: '/no-such-page', headers: { accept: 'text/html,application/xhtml+xml' } });
    assert.equal(page.statusCode, 404);
    assert.match(page.headers['content-type'] ?? '', /^text\/html/);
    assert.ok(page.body.includes('start page'));
    // A form submitted to a page that does not exist (a stale console form) is a person too.
    const form = await app.inject({ url: '/admin/nonexistent', method: 'POST', headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=b' });
    assert.equal(form.statusCode, 404);
    assert.match(form.headers['content-type'] ?? '', /^text\/html/);

    for (const request of [
      { url: '/no-such-page', headers: { accept: 'application/json' } },
      { url: '/no-such-page', headers: {} },
      { url: '/.well-known/unknown', headers: { accept: 'text/html' } },
      { url: '/token/x', headers: { accept: 'text/html' } },
      { url: '/no-such-page', method: 'POST' as const, headers: { accept: 'application/json, text/event-stream' } },
      { url: '/no-such-page', method: 'DELETE' as const, headers: { accept: 'text/html' } },
    ]) {
      const response = await app.inject(request);
      assert.equal(response.statusCode, 404, request.url);
      assert.match(response.headers['content-type'] ?? '', /^application\/json/, `${request.url} ${JSON.stringify(request.headers)}`);
      assert.equal((response.json() as { error: string }).error, 'not_found');
    }
  });
});
