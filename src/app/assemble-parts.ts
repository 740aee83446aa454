import type { FastifyPluginAsync } from 'fastify';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import type { ReadinessCheck } from '../server/health.ts';
import { createAdminPlugin } from '../admin/admin-plugin.ts';
import { completeConsoleSignIn } from '../admin/console-sign-in.ts';
import { upstreamReadinessCheck } from '../admin/health-checks.ts';
import { instrumentStore } from '../observability/instrumented-store.ts';
import type { Tracing } from '../observability/tracing.ts';
import { createMetricsPlugin, installRequestMetrics, startMetricsListener } from '../admin/metrics-plugin.ts';
import { createMetrics, type GatehouseMetrics } from '../observability/metrics.ts';
import { createAuthorizationServer, type AuthorizationServerDeps } from '../authorization/authorization-server.ts';
import { createTokenBroker } from '../broker/token-broker.ts';
import { registerTokenExchangeGrant } from '../broker/token-exchange-grant.ts';
import { userHasGrant } from '../grants/user-grants.ts';
import { storeFailureLogFields } from '../store/store.ts';
import { requestDpopProof } from '../authorization/grants/dpop-binding.ts';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { DemoComponents } from '../demo/run-demo.ts';
import { createGatewayPlugin } from '../proxy/gateway-plugin.ts';
import { createRevokedGrantsCache } from '../grants/revoked-grants.ts';
import { createEndGrant } from '../grants/end-grant.ts';
import { auditGrantEnds } from '../authorization/grant-end-audit.ts';
import { protectedResources } from '../authorization/protected-resources.ts';
import { createUpstreamClient } from '../upstream/upstream-client.ts';
import { GatehouseError } from '../errors/internal-errors.ts';
import { createLandingPlugin, serverName } from '../admin/landing-page.ts';
import type { ConsoleReload, LastReload } from '../admin/console-state.ts';
import type { ReloadTarget } from './reload-config.ts';
import { displayUrl } from '../config/display-url.ts';
import { createAuditLog } from '../proxy/audit.ts';

/**
 * THE place where Gatehouse is assembled from its configuration: the CLI's `start`, the tests and the benchmark all
 * call it; nothing else wires parts together (a test keeps it so: test/architecture/layers.test.ts).
 */
/** What the parts of Gatehouse contribute to the running server. */
export interface GatewayParts {
  /** Fastify plugins registered in order (authorization server, resource metadata, MCP proxy, admin, demo). */
  plugins: FastifyPluginAsync[];
  /** Extra `/readyz` checks by name (e.g. upstream discovery). */
  readinessChecks?: Record<string, ReadinessCheck>;
  /** Lines printed after the "listening" line: in the demo, where the local IdP is and how to connect a client. */
  banner?: string[];
  /** Stops whatever the parts started (demo servers, timers); called after the gateway stopped. */
  close?: () => Promise<void>;
  /** The configuration the parts read, for a reload without restart (src/app/reload-config.ts). */
  reloadTarget?: ReloadTarget;
}

/** Test seams and embedder options for assembleGatewayParts; production passes none. */
export interface AssembleOptions {
  /** The CIMD fetch guard's test seams (a resolver and a loopback exception for one test host). */
  clientMetadataFetch?: AuthorizationServerDeps['clientMetadataFetch'];
  /** The console's Reload button calls this (startGateway passes it when it runs from a config file). */
  reloadConfig?: ConsoleReload;
  /** The last reload this replica ran, by SIGHUP or the console (shown on the console's overview). */
  lastReload?: LastReload;
  /** OpenTelemetry tracing, when the `OTEL_*` environment configures it (startGateway loads it); off otherwise. */
  tracing?: Tracing;
}

/**
 * THE place where the parts of Gatehouse are plugged in: upstream client → token broker → authorization server (with
 * the broker's RFC 8693 grant) → revoked-grants cache → MCP gateway → admin console, connected apps and metrics.
 * In `mode: demo` it first starts the local stand-ins (identity provider, directory API, sample Graph MCP server),
 * since the gateway signs in through them; they are stopped after the gateway.
 */
export async function assembleGatewayParts(baseCtx: GatehouseContext, options: AssembleOptions = {}): Promise<GatewayParts> {
  const cleanups: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  try {
    let ctx = baseCtx;
    let demo: DemoComponents | undefined;
    // The demo stand-ins (a second OIDC provider, the sample MCP server and both MCP SDKs) are loaded only in demo
    // mode: a production process never runs them, and loading them cost it memory at rest.
    const demoModule = ctx.config.mode === 'demo' ? await import('../demo/run-demo.ts') : undefined;
    if (demoModule?.usesLocalIdentityProvider(ctx.config)) {
      const options = { config: ctx.config, publicUrl: ctx.publicUrl, random: ctx.random, logger: ctx.logger };
      const started = await demoModule.startDemoComponents(options).catch((error: unknown) => {
        throw demoModule.demoStartError(error, baseCtx.config.demo);
      });
      cleanups.push(() => started.close());
      ctx = { ...ctx, config: demoModule.withDemoSettings(ctx.config, started) };
      demo = started;
    } else if (demoModule) {
      ctx.logger.warn('mode: demo with another upstream identity provider: the local demo components are not started');
      ctx = { ...ctx, config: demoModule.withoutLocalIdentityProvider(ctx.config) };
    }
    const { config } = ctx;
    // Told after a reload changed what the parts read (the gateway re-judges its open streams).
    const reloaded = new Set<() => void>();
    if (!config.upstream) throw new GatehouseError('GH_USAGE', 'upstream: required — the identity provider users sign in with');

    const metrics = createMetrics({ clock: ctx.clock });
    // Every part's store calls are timed for `gatehouse_store_operation_duration_seconds`; the server's own health
    // check keeps the plain store (startGateway closes that one).
    ctx = { ...ctx, store: instrumentStore(ctx.store, metrics) };
    // Traced requests carry their context on to the IdP and token endpoints (the broker's on-behalf-of exchange).
    if (options.tracing?.enabled) ctx = { ...ctx, fetch: options.tracing.wrapFetch(ctx.fetch) };
    const upstream = createUpstreamClient({ ...ctx, config: config.upstream, metrics });
    const broker = createTokenBroker({
      config,
      store: ctx.store,
      keyring: ctx.keyring,
      clock: ctx.clock,
      logger: ctx.logger,
      upstream,
      metrics,
      userHasGrant: (subject) => userHasGrant(ctx.store, subject),
    });
    const revokedGrants = createRevokedGrantsCache({
      store: ctx.store,
      clock: ctx.clock,
      maxStalenessMs: config.authorization.revocationMaxStalenessSeconds * 1000,
      onError: (error) => ctx.logger.warn(storeFailureLogFields(error), 'revoked-grants re-sync failed'),
    });
    await revokedGrants.start();
    cleanups.push(() => revokedGrants.stop());
    // One audit log for the gateway's requests and the backends' token exchanges at /token (the gateway closes it).
    const audit = createAuditLog({
      store: ctx.store,
      random: ctx.random,
      logger: ctx.logger,
      output: config.audit.output,
      retentionDays: config.audit.retentionDays,
      onDropped: (count) => metrics.auditRecordsDropped(count),
    });
    // The one grant-ending function every part uses (src/grants/end-grant.ts): each end is logged with its reason and
    // is an audit record (routes are not added or removed by a reload, so the resources are read once).
    const auditGrantEnd = auditGrantEnds(protectedResources(ctx.publicUrl, config.routes), ctx.clock, (entry) => audit.record(entry));
    const endGrant = createEndGrant({
      store: ctx.store,
      clock: ctx.clock,
      accessTokenTtlSeconds: config.authorization.accessTokenTtlSeconds,
      grantLifetimeSeconds: config.authorization.refreshTokenAbsoluteSeconds,
      onEnded: (ended) => {
        ctx.logger.info({ grantId: ended.grantId, reason: ended.reason }, 'grant ended');
        auditGrantEnd(ended);
      },
    });

    const authorization = await createAuthorizationServer(ctx, {
      upstream,
      // The console signs in through the same IdP and `/callback`; the callback hands its completions over.
      consoleSignIn: completeConsoleSignIn,
      metrics,
      endGrant,
      recordAudit: (entry) => audit.record(entry),
      grantTypes: [
        (provider) =>
          registerTokenExchangeGrant(provider, {
            config,
            publicUrl: ctx.publicUrl,
            keyring: ctx.keyring,
            clock: ctx.clock,
            broker,
            revokedGrants,
            recordAudit: (entry) => audit.record(entry),
            checkDpopProof: (grantCtx) => requestDpopProof(provider, grantCtx as unknown as KoaContextWithOIDC),
          }),
      ],
      ...(options.clientMetadataFetch ? { clientMetadataFetch: options.clientMetadataFetch } : {}),
    });
    const plugins: FastifyPluginAsync[] = [
      requestMetrics(metrics),
      createAdminPlugin(ctx, { upstream, metrics, endGrant, ...(options.reloadConfig ? { reloadConfig: options.reloadConfig } : {}), ...(options.lastReload ? { lastReload: options.lastReload } : {}) }),
      authorization.plugin,
      createGatewayPlugin(ctx, { broker, revokedGrants, endGrant, metrics, tracing: options.tracing, audit, onReloaded: (listener) => (reloaded.add(listener), () => void reloaded.delete(listener)) }),
      createMetricsPlugin(ctx, metrics),
      createLandingPlugin(ctx),
    ];
    // Where /metrics is, and who may read it: on the main port loopback callers (in the demo) or the token's holders;
    // on admin.metricsPort's own listener anyone who reaches `server.host` there, unless a token is set.
    const metricsAccess = { url: `${ctx.publicUrl}/metrics`, access: config.admin.metricsToken === undefined ? 'loopback only in the demo' : 'Authorization: Bearer admin.metricsToken' };
    if (config.admin.metricsPort !== undefined) {
      const listener = await startMetricsListener(ctx, metrics);
      cleanups.push(() => listener.close());
      const address = listener.server.address();
      if (address !== null && typeof address === 'object') {
        // A wildcard address is reached on loopback too; the port is the one bound (the system's pick for 0).
        const wildcard = address.address === '0.0.0.0' || address.address === '::';
        const host = wildcard ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
        metricsAccess.url = `http://${host}:${address.port}/metrics`;
        if (config.admin.metricsToken === undefined) metricsAccess.access = `anyone who reaches ${config.server.host} on port ${address.port}`;
      }
    }
    const banner = demo
      ? (await import('../demo/demo-banner.ts')).demoBanner({
          publicUrl: ctx.publicUrl,
          mcpPath: demo.graphRoute?.path ?? config.routes[0]?.path ?? '/mcp',
          serverName: serverName(demo.graphRoute ?? config.routes[0] ?? { path: '/mcp' }),
          legacySse: (demo.graphRoute ?? config.routes[0])?.transports.includes('sse') === true,
          identityProviderUrl: demo.identityProvider.issuer,
          directoryApiUrl: demo.directoryApi.url,
          graphServerUrl: demo.graphServer?.url,
          users: demo.users,
          adminGroups: ctx.config.admin.groups,
          metrics: metricsAccess,
        })
      : config.routes.map((entry) => `${entry.type === 'http' ? 'HTTP route' : 'MCP route'}: ${ctx.publicUrl}${entry.path} → ${displayUrl(entry.backend)}`);
    const reloadTarget: ReloadTarget = {
      live: config,
      applied: () => {
        for (const listener of reloaded) listener();
      },
      prepare: demoModule ? (next) => (demo ? demoModule.withDemoSettings(next, demo) : demoModule.withoutLocalIdentityProvider(next)) : (next) => next,
      knownScopes: new Set(config.routes.flatMap((route) => Object.keys(route.scopes))),
    };
    return { plugins, readinessChecks: { upstream: upstreamReadinessCheck(upstream) }, banner, close, reloadTarget };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Fastify plugins run encapsulated; request metrics must see every route, so this one is registered at the root. */
function requestMetrics(metrics: GatehouseMetrics): FastifyPluginAsync {
  const plugin: FastifyPluginAsync = async (app) => installRequestMetrics(app, metrics);
  return Object.assign(plugin, { [Symbol.for('skip-override')]: true });
}
