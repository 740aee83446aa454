import { readFileSync } from 'node:fs';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import type { FastifyPluginAsync } from 'fastify';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import type { EndGrant } from '../grants/end-grant.ts';
import type { UpstreamClient } from '../upstream/types.ts';
import { registerAccountRoutes } from './account-routes.ts';
import { registerAdminRoutes } from './admin-routes.ts';
import { registerOverviewRoutes } from './overview-routes.ts';
import { registerToolRoutes } from './tool-routes.ts';
import { beginConsoleSignIn } from './console-sign-in.ts';
import { SIGNED_OUT_PATH, signedOutPage, signOut } from './console-sign-out.ts';
import { createConsoleState, type ConsoleReload, type ConsoleState, type LastReload } from './console-state.ts';
import type { GatehouseMetrics } from '../observability/metrics.ts';
import { ADMIN_STYLESHEET_PATH } from './pages/layout.ts';
import { htmlCspWithFormTargets } from '../server/security-headers.ts';
import { upstreamBrowserOrigin } from '../upstream/profile.ts';
import { formPostRoute } from '../server/form-routes.ts';

/**
 * The admin console (`/admin`, admins only) and the connected-apps page (`/account`, every signed-in user), both
 * server-rendered with no script. Sign-in goes through the upstream IdP (console-sign-in.ts); the shared `/callback`
 * finishes it through `completeConsoleSignIn`, which finds this plugin's state on the root instance — that is why
 * the outer plugin is not encapsulated (`skip-override`), while the routes inside it are.
 */
export interface AdminPluginDeps {
  upstream: UpstreamClient;
  metrics: GatehouseMetrics;
  /** The app's grant-ending function (src/grants/end-grant.ts). */
  endGrant?: EndGrant;
  /** Reloads the configuration file (src/app/reload-config.ts); absent when the gateway runs without a file. */
  reloadConfig?: ConsoleReload;
  /** The last reload this replica ran (shown on the overview). */
  lastReload?: LastReload;
}

const stylesheet = readFileSync(new URL('./admin.css', import.meta.url), 'utf8');

function consoleRoutes(state: ConsoleState): FastifyPluginAsync {
  return async (app) => {
    if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) await app.register(formbody);
    // Registering it also loads its cookie codec, which console-session.ts and console-state.ts call directly.
    if (!app.hasDecorator('parseCookie')) await app.register(cookie);
    const page = { config: { errorFormat: 'html' as const } };
    // Every console page carries the sign-out form, whose redirect chain ends at the IdP's end-session endpoint.
    const upstreamOrigin = upstreamBrowserOrigin(state.ctx.config.upstream);
    const consoleCsp = htmlCspWithFormTargets(upstreamOrigin === undefined ? [] : [upstreamOrigin]);
    // Set before the handler runs: the server's own defaults fill only what is still missing when the reply is sent.
    app.addHook('onRequest', async (_request, reply) => {
      reply.header('content-security-policy', consoleCsp);
    });

    app.get(ADMIN_STYLESHEET_PATH, async (_request, reply) =>
      reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(stylesheet),
    );

    app.get('/admin/sign-in', page, async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      return beginConsoleSignIn(state, reply, typeof query.return === 'string' ? query.return : '/account');
    });

    app.post('/admin/sign-out', formPostRoute, async (request, reply) => signOut(state, request, reply));
    app.get(SIGNED_OUT_PATH, page, async (_request, reply) => signedOutPage(reply));

    registerOverviewRoutes(app, state);
    registerAdminRoutes(app, state);
    registerToolRoutes(app, state);
    registerAccountRoutes(app, state);
  };
}

export function createAdminPlugin(ctx: GatehouseContext, deps: AdminPluginDeps): FastifyPluginAsync {
  const state = createConsoleState(ctx, deps);
  const plugin: FastifyPluginAsync = async (app) => {
    app.decorate('gatehouseConsole', state);
    await app.register(consoleRoutes(state));
  };
  // Fastify's documented switch for "register in the parent's context" (what fastify-plugin sets).
  Object.assign(plugin, { [Symbol.for('skip-override')]: true });
  return plugin;
}
