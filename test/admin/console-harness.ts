import assert from 'node:assert/strict';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { createAdminPlugin } from '../../src/admin/admin-plugin.ts';
import { completeConsoleSignIn } from '../../src/admin/console-sign-in.ts';
import type { ConsoleReload, LastReload } from '../../src/admin/console-state.ts';
import { createMetrics, type GatehouseMetrics } from '../../src/observability/metrics.ts';
import { createMetricsPlugin, installRequestMetrics } from '../../src/admin/metrics-plugin.ts';
import { demoConfig } from '../../src/config/demo-defaults.ts';
import type { GatehouseConfig } from '../../src/config/schema.ts';
import { loadKeyring, type ReloadingKeyring } from '../../src/keys/load-keyring.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import type { GatehouseContext } from '../../src/context/gatehouse-context.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { buildServer } from '../../src/server/app.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import type { UpstreamClient, UpstreamIdentity } from '../../src/upstream/types.ts';
import { captureLogs, testContext, type LogCapture } from '../support/server-context.ts';
import { ALICE, seedStore } from './seed.ts';

/**
 * The console on a real server with a FAKE upstream: `beginSignIn` sends the browser to `/test/idp`, a test route
 * that plays the shared `/callback` and calls `completeConsoleSignIn` with whichever identity the test chose.
 */
export interface ConsoleHarness {
  app: FastifyInstance;
  ctx: GatehouseContext;
  store: Store;
  clock: ManualClock;
  metrics: GatehouseMetrics;
  logs: LogCapture;
  /** Who the fake IdP signs in next. */
  signInAs(identity: UpstreamIdentity): void;
  close(): Promise<void>;
}

export interface ConsoleHarnessOptions {
  config?: (config: GatehouseConfig) => GatehouseConfig;
  publicUrl?: string;
  /** A shared store (e.g. Redis, already seeded); by default a fresh in-memory SQLite store seeded here. */
  store?: Store;
  /** The console's Reload button (the app passes one when it runs from a config file). */
  reloadConfig?: ConsoleReload;
  lastReload?: LastReload;
  /** The console's clock (default: stopped at 2026-05-01 12:00 UTC); beside a live gateway, one stopped at now. */
  clock?: ManualClock;
}

export async function startConsoleHarness(options: ConsoleHarnessOptions = {}): Promise<ConsoleHarness> {
  const clock = options.clock ?? new ManualClock(Date.UTC(2026, 4, 1, 12));
  const base = demoConfig();
  const configured: GatehouseConfig = {
    ...base,
    admin: { ...base.admin, users: [ALICE.email] },
    authorization: {
      ...base.authorization,
      clients: [{ clientId: 'configured-app', name: 'Configured App', redirectUris: ['https://configured.example/cb'], grantTypes: ['authorization_code', 'refresh_token'], allowedDownstream: [] }],
    },
  };
  const config = options.config ? options.config(configured) : configured;
  const store = options.store ?? (await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 }));
  const { logger, logs } = captureLogs();
  const keyring: ReloadingKeyring = await loadKeyring({ store, keysConfig: config.keys, clock, logger, random: cryptoRandom, reloadIntervalMs: 0 });
  if (options.store === undefined) await seedStore(store, clock);
  const ctx = testContext({
    config,
    publicUrl: options.publicUrl ?? 'http://127.0.0.1:8080',
    store,
    keyring,
    clock,
    logger,
    fetch: () => Promise.reject(new Error('no outbound requests in console tests')),
  });
  let identity: UpstreamIdentity = ALICE;
  const upstream: UpstreamClient = {
    beginSignIn: async ({ interactionId }) => ({ authorizationUrl: `/test/idp?interaction=${encodeURIComponent(interactionId)}`, stateCookie: 'fake-state' }),
    completeSignIn: () => Promise.reject(new Error('not used')),
    refresh: () => Promise.reject(new Error('not used')),
    exchangeForDownstream: () => Promise.reject(new Error('not used')),
    checkHealth: async () => {},
  };
  const metrics = createMetrics({ clock });
  const fakeCallback: FastifyPluginAsync = async (app) => {
    app.get('/test/idp', { config: { errorFormat: 'html' } }, async (request, reply) => {
      const interactionId = String((request.query as Record<string, unknown>).interaction ?? '');
      return completeConsoleSignIn({ interactionId, identity, tokens: { accessToken: 'upstream-at', expiresAt: clock.now() + 3_600_000 } }, request, reply);
    });
  };
  const metricsHook: FastifyPluginAsync = async (app) => installRequestMetrics(app, metrics);
  Object.assign(metricsHook, { [Symbol.for('skip-override')]: true });
  const app = await buildServer(ctx, {
    plugins: [metricsHook, createAdminPlugin(ctx, { upstream, metrics, ...(options.reloadConfig ? { reloadConfig: options.reloadConfig } : {}), ...(options.lastReload ? { lastReload: options.lastReload } : {}) }), createMetricsPlugin(ctx, metrics), fakeCallback],
  });
  return {
    app,
    ctx,
    store,
    clock,
    metrics,
    logs,
    signInAs: (next) => {
      identity = next;
    },
    close: async () => {
      await app.close();
      await keyring.close();
      if (options.store === undefined) await store.close();
    },
  };
}

export interface ConsoleBrowser {
  cookie: string;
  csrf: string;
}

/** Signs in through the fake IdP and returns the session cookie and the CSRF token from a rendered page. */
export async function signInTo(h: ConsoleHarness, identity: UpstreamIdentity, returnTo: string): Promise<ConsoleBrowser> {
  h.signInAs(identity);
  const begin = await h.app.inject({ url: `/admin/sign-in?return=${encodeURIComponent(returnTo)}` });
  assert.equal(begin.statusCode, 303);
  const upstreamCookie = String(begin.headers['set-cookie']);
  assert.match(upstreamCookie, /^gatehouse-upstream=fake-state;.*HttpOnly.*SameSite=Lax/);
  const callback = await h.app.inject({ url: String(begin.headers.location) });
  assert.equal(callback.statusCode, 303);
  assert.equal(callback.headers.location, returnTo);
  const setCookies = ([] as string[]).concat(callback.headers['set-cookie'] ?? []);
  const session = setCookies.find((value) => value.startsWith('gatehouse-console='));
  assert.ok(session, 'session cookie set');
  assert.match(session, /HttpOnly/);
  assert.match(session, /SameSite=Lax/);
  assert.match(session, /Max-Age=28800/);
  const cookie = session.split(';')[0] ?? '';
  const account = await h.app.inject({ url: '/account', headers: { cookie } });
  const csrf = /name="csrf" value="([^"]+)"/.exec(account.body)?.[1];
  assert.ok(csrf, 'page carries a CSRF token');
  return { cookie, csrf };
}

/** A console form POST as the browser sends it: the session cookie, a urlencoded body, our Origin unless told. */
export function consolePost(h: ConsoleHarness, browser: ConsoleBrowser, url: string, form: Record<string, string>, headers: Record<string, string> = { origin: new URL(h.ctx.publicUrl).origin }) {
  return h.app.inject({
    method: 'POST',
    url,
    headers: { cookie: browser.cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    payload: new URLSearchParams(form).toString(),
  });
}
