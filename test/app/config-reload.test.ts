import type { LastReload } from '../../src/admin/console-state.ts';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { createLandingPlugin } from '../../src/admin/landing-page.ts';
import type { GatehouseContext } from '../../src/context/gatehouse-context.ts';
import { applyReload, createConfigReloader, type ReloadOutcome, type ReloadTarget } from '../../src/app/reload-config.ts';
import { captureLogs } from '../support/server-context.ts';
import { protectedResources } from '../../src/authorization/protected-resources.ts';
import { demoConfig } from '../../src/config/demo-defaults.ts';
import type { GatehouseConfig } from '../../src/config/schema.ts';
import { createRouteState } from '../../src/proxy/route-state.ts';
import { decideTool } from '../../src/proxy/tool-policy.ts';
import { signInTo, startConsoleHarness, type ConsoleHarness } from '../admin/console-harness.ts';
import { ALICE } from '../admin/seed.ts';

const PUBLIC_URL = 'http://127.0.0.1:8080';

function targetFor(live: GatehouseConfig): ReloadTarget {
  return { live, prepare: (next) => next, knownScopes: new Set(live.routes.flatMap((route) => Object.keys(route.scopes))) };
}

/** A deep copy, as a fresh load of the same file gives. */
const copy = (config: GatehouseConfig): GatehouseConfig => structuredClone(config);

describe('applyReload: what a reload changes on the running gateway, and what waits for a restart', () => {
  it('applies tool policies, route scopes and the admin lists in place, where the parts read them', () => {
    const live = demoConfig();
    const route = live.routes[0];
    assert.ok(route);
    const state = createRouteState(PUBLIC_URL, route);
    const resources = protectedResources(PUBLIC_URL, live.routes);
    assert.deepEqual(route.requiredScopes, ['mcp:tools', 'graph:read']);
    const next = copy(live);
    const nextRoute = next.routes[0];
    assert.ok(nextRoute);
    nextRoute.tools = { echo: { scopes: ['graph:read'], groups: [] } };
    nextRoute.requiredScopes = ['mcp:tools'];
    nextRoute.scopes = { 'mcp:tools': 'Tools, renamed', 'graph:read': 'Read' };
    next.admin.users = ['ops@example.com'];

    const report = applyReload(targetFor(live), next);

    assert.deepEqual(report, {
      applied: ['routes[/mcp].scopes', 'routes[/mcp].requiredScopes', 'routes[/mcp].tools', 'admin.users'],
      needsRestart: [],
    });
    assert.equal(decideTool(route, 'echo', { scopes: ['mcp:tools'], groups: [] }).allowed, false);
    assert.deepEqual(state.target.requiredScopes, ['mcp:tools']);
    assert.equal(state.target.scope, 'mcp:tools', 'the 401 challenge names the new scopes');
    assert.equal(resources.describeScope('mcp:tools'), 'Tools, renamed', 'the consent page shows the new description');
    assert.deepEqual(live.admin.users, ['ops@example.com']);
  });

  it('the start page lists the reloaded scope descriptions', async () => {
    const live = demoConfig();
    const app = Fastify();
    await app.register(createLandingPlugin({ config: live, publicUrl: PUBLIC_URL } as GatehouseContext));
    const next = copy(live);
    const nextRoute = next.routes[0];
    assert.ok(nextRoute);
    nextRoute.scopes = { ...nextRoute.scopes, 'mcp:tools': 'Tools, described anew' };
    applyReload(targetFor(live), next);
    assert.match((await app.inject({ url: '/' })).body, /Tools, described anew/);
    await app.close();
  });

  it('reports the listening address, store, upstream, routes added or removed and backends as needing a restart, without applying them', () => {
    const live = demoConfig();
    const before = copy(live);
    const next = copy(live);
    next.server.port = 9999;
    next.store.type = 'redis';
    const first = next.routes[0];
    assert.ok(first);
    first.backend = 'http://127.0.0.1:1/mcp';
    next.routes.push({ ...first, path: '/files' });

    const report = applyReload(targetFor(live), next);

    assert.deepEqual(report.applied, []);
    assert.deepEqual(report.needsRestart, ['server', 'store', 'routes added: /files', "routes[/mcp]: backend — none of this route's changes applied"]);
    assert.deepEqual(live, before, 'nothing of it was applied');
  });

  it('leaves a route scope the authorization server has never heard of for a restart (its scope list is fixed at start)', () => {
    const live = demoConfig();
    const next = copy(live);
    const nextRoute = next.routes[0];
    assert.ok(nextRoute);
    nextRoute.scopes = { ...nextRoute.scopes, 'files:write': 'Write files' };
    const report = applyReload(targetFor(live), next);
    assert.deepEqual(report, { applied: [], needsRestart: ["routes[/mcp]: scopes (new scope files:write) — none of this route's changes applied"] });
    assert.ok(!Object.hasOwn(live.routes[0]?.scopes ?? {}, 'files:write'));
  });

  it('applies none of a route\'s changes when one of them waits for a restart: half of an edit could open the route', () => {
    // A rule moved from `tools` to `defaultToolPolicy` (not reloadable): applied alone, the `tools` part dropped the
    // rule at once and the policy that replaced it waited for a restart — the tool open to everyone meanwhile.
    const live = demoConfig();
    const route = live.routes[0];
    assert.ok(route);
    route.tools = { echo: { scopes: [], groups: ['admins'] } };
    const next = copy(live);
    const nextRoute = next.routes[0];
    assert.ok(nextRoute);
    nextRoute.tools = {};
    nextRoute.backend = 'http://127.0.0.1:2/mcp';
    const report = applyReload(targetFor(live), next);
    assert.deepEqual(report.applied, []);
    assert.deepEqual(report.needsRestart, ["routes[/mcp]: backend, tools — none of this route's changes applied"]);
    assert.equal(decideTool(route, 'echo', { scopes: ['mcp:tools', 'graph:read'], groups: [] }).allowed, false, 'the running rule still holds');

    // The same with a scope new to the gateway next to a tool rule dropped as redundant.
    const scoped = copy(live);
    const scopedRoute = scoped.routes[0];
    assert.ok(scopedRoute);
    scopedRoute.scopes = { ...scopedRoute.scopes, 'mcp:ops': 'Operations' };
    scopedRoute.requiredScopes = [...scopedRoute.requiredScopes, 'mcp:ops'];
    scopedRoute.tools = {};
    assert.deepEqual(applyReload(targetFor(live), scoped).applied, []);
    assert.equal(decideTool(route, 'echo', { scopes: ['mcp:tools', 'graph:read'], groups: [] }).allowed, false);
  });
});

describe('createConfigReloader', () => {
  it('remembers the last reload, refused or not, with its trigger and time, for the console', () => {
    const { logger } = captureLogs();
    let now = 1_000;
    const reload = createConfigReloader({ load: { file: '/nonexistent/gatehouse.yaml', env: {}, cwd: '/' }, target: () => undefined, logger, now: () => now });
    assert.equal(reload.last(), undefined);
    reload('SIGHUP');
    assert.deepEqual(reload.last(), { trigger: 'SIGHUP', at: 1_000, outcome: { ok: false, problems: ['the gateway is still starting'] } });
    now = 2_000;
    reload('admin console');
    assert.equal(reload.last()?.trigger, 'admin console');
    assert.equal(reload.last()?.at, 2_000);
  });
});

describe('the console Reload button (POST /admin/reload)', () => {
  let h: ConsoleHarness;
  let outcome: ReloadOutcome = { ok: true, report: { applied: ['routes[/mcp].tools'], needsRestart: ['server'] } };
  let calls = 0;
  let last: ReturnType<LastReload>;
  before(async () => {
    h = await startConsoleHarness({
      reloadConfig: () => {
        calls += 1;
        return outcome;
      },
      lastReload: () => last,
    });
  });
  after(() => h.close());

  const post = (cookie: string, form: Record<string, string>, origin = PUBLIC_URL) =>
    h.app.inject({
      method: 'POST',
      url: '/admin/reload',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', origin },
      payload: new URLSearchParams(form).toString(),
    });

  it('is offered on the overview, refuses a missing or forged CSRF token or another origin, and shows what applied', async () => {
    const alice = await signInTo(h, ALICE, '/admin');
    const overview = await h.app.inject({ url: '/admin', headers: { cookie: alice.cookie } });
    assert.match(overview.body, /<form method="post" action="\/admin\/reload"[^>]*>.*<button type="submit" class="secondary">Reload configuration<\/button>/);

    for (const response of [await post(alice.cookie, {}), await post(alice.cookie, { csrf: 'forged' }), await post(alice.cookie, { csrf: alice.csrf }, 'https://evil.example')]) {
      assert.equal(response.statusCode, 403);
    }
    assert.equal(calls, 0, 'no reload without a valid CSRF token');

    const done = await post(alice.cookie, { csrf: alice.csrf });
    assert.equal(done.statusCode, 200);
    assert.equal(calls, 1);
    assert.match(done.body, /<code>routes\[\/mcp\]\.tools<\/code>/);
    assert.match(done.body, /applied only after a restart<\/h2><ul><li><code>server<\/code>/);
  });

  it('shows the problems of a refused file with 422, and says the running configuration keeps serving', async () => {
    outcome = { ok: false, problems: ['servr: unknown key — did you mean "server"?'] };
    const alice = await signInTo(h, ALICE, '/admin');
    const refused = await post(alice.cookie, { csrf: alice.csrf });
    assert.equal(refused.statusCode, 422);
    assert.match(refused.body, /running configuration keeps serving/);
    assert.match(refused.body, /servr: unknown key — did you mean &quot;server&quot;\?/);
  });

  it('says on the overview what the last reload did: a refused SIGHUP was told only in the log', async () => {
    const alice = await signInTo(h, ALICE, '/admin');
    const overview = async () => (await h.app.inject({ url: '/admin', headers: { cookie: alice.cookie } })).body;
    last = undefined;
    assert.doesNotMatch(await overview(), /The last reload/);
    last = { trigger: 'SIGHUP', at: Date.UTC(2026, 11, 7, 16, 20), outcome: { ok: false, problems: ['routes[0].path: must be an absolute path'] } };
    const refused = await overview();
    assert.match(refused, /The last reload, 2026-12-07 16:20:00 UTC \(SIGHUP\), was refused/);
    assert.match(refused, /<code>routes\[0\]\.path: must be an absolute path<\/code>/);
    last = { trigger: 'SIGHUP', at: Date.UTC(2026, 11, 7, 16, 21), outcome: { ok: true, report: { applied: [], needsRestart: ['routes removed: /old'] } } };
    assert.match(await overview(), /left changes for a restart[^]*<code>routes removed: \/old<\/code>/);
    last = { trigger: 'admin console', at: Date.UTC(2026, 11, 7, 16, 22), outcome: { ok: true, report: { applied: ['routes[/mcp].tools'], needsRestart: [] } } };
    assert.match(await overview(), /The last reload, 2026-12-07 16:22:00 UTC \(admin console\), applied <code>routes\[\/mcp\]\.tools<\/code>/);
  });

  it('is not for a signed-in user who is not an admin', async () => {
    const bob = await signInTo(h, { ...ALICE, subject: 'tenant/bob', email: 'bob@example.com', groups: [] }, '/account');
    const before = calls;
    const response = await post(bob.cookie, { csrf: bob.csrf });
    assert.equal(response.statusCode, 403);
    assert.equal(calls, before);
  });
});
