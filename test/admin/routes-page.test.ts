import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signInTo, startConsoleHarness, type ConsoleHarness } from './console-harness.ts';
import { ALICE, BOB } from './seed.ts';

/** `/admin/routes`: the routes as configured, read-only, escaped, no credentials from a backend URL, admins only. */
describe('admin routes page', () => {
  let h: ConsoleHarness;
  before(async () => {
    h = await startConsoleHarness({
      config: (config) => ({
        ...config,
        routes: config.routes.map((route) => ({
          ...route,
          backend: 'https://svc:hunter2@backend.internal/mcp?code=fn-key-0123&tenant=a',
          toolPinning: 'block' as const,
          tools: { delete_all: { scopes: ['mcp:admin'], groups: ['ops'], allow: 'args.dryRun == true', denyReason: 'Only <dry runs>' } },
        })),
      }),
    });
  });
  after(async () => {
    await h.close();
  });

  it('lists each route with its backend, transports, scopes, tool policies and modes', async () => {
    const alice = await signInTo(h, ALICE, '/admin/routes');
    const page = await h.app.inject({ url: '/admin/routes', headers: { cookie: alice.cookie } });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /<h2>\/mcp <span class="badge">MCP<\/span><\/h2>/);
    assert.match(page.body, /<code>https:\/\/backend\.internal\/mcp\?code=…&amp;tenant=…<\/code>/);
    assert.doesNotMatch(page.body, /hunter2/, 'no password from the backend URL');
    assert.doesNotMatch(page.body, /fn-key-0123/, 'no key from the backend URL query (an Azure Functions `code=`)');
    assert.match(page.body, /<code>streamable-http<\/code> <code>sse<\/code>/);
    assert.match(page.body, /<dt>Tool pinning<\/dt><dd><code>block<\/code><\/dd>/);
    assert.match(page.body, /<code>delete_all<\/code>/);
    assert.match(page.body, /<code>args\.dryRun == true<\/code><br><span class="muted">Only &lt;dry runs&gt;<\/span>/);
    assert.match(page.body, /<dt>rateLimit<\/dt><dd><code>\{&quot;perUserPerMinute&quot;:/, 'settings the page does not lay out are listed by name');
    assert.match(page.body, /aria-current="page">Routes</);
    assert.doesNotMatch(page.body, /<form method="post" action="\/admin\/routes/, 'read-only');
  });

  it('is for admins only', async () => {
    const bob = await signInTo(h, BOB, '/account');
    const page = await h.app.inject({ url: '/admin/routes', headers: { cookie: bob.cookie } });
    assert.equal(page.statusCode, 403);
    assert.doesNotMatch(page.body, /backend\.internal/);
  });
});
