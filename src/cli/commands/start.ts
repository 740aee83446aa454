import { createServer } from 'node:net';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { LevelWithSilent } from 'pino';
import { loadConfig } from '../../config/load.ts';
import { loadKeyring } from '../../keys/load-keyring.ts';
import { systemClock, type Clock } from '../../runtime/clock.ts';
import type { GatehouseContext } from '../../runtime/context.ts';
import { cryptoRandom } from '../../runtime/random.ts';
import { buildServer } from '../../server/app.ts';
import { installGracefulShutdown, type GracefulShutdown, type SignalSource } from '../../server/graceful-shutdown.ts';
import type { ReadinessCheck } from '../../server/health.ts';
import { createLogger } from '../../server/logger.ts';
import { openStore } from '../../store/open-store.ts';
import { StoreUnavailableError } from '../../store/store.ts';
import { CliUsageError, type CliCommand, type CliIo } from '../command.ts';
import { createAdminPlugin } from '../../admin/admin-plugin.ts';
import { completeConsoleSignIn } from '../../admin/console-sign-in.ts';
import { upstreamReadinessCheck } from '../../admin/health-checks.ts';
import { instrumentStore } from '../../admin/instrumented-store.ts';
import { createMetricsPlugin, installRequestMetrics, startMetricsListener } from '../../admin/metrics-plugin.ts';
import { createMetrics, type GatehouseMetrics } from '../../admin/metrics.ts';
import { createAuthorizationServer, type AuthorizationServerDeps } from '../../authorization/authorization-server.ts';
import { createBrokerMetrics } from '../../broker/broker-metrics.ts';
import { createTokenBroker } from '../../broker/token-broker.ts';
import { registerTokenExchangeGrant } from '../../broker/token-exchange-grant.ts';
import type { DemoComponents } from '../../demo/run-demo.ts';
import { createGatewayPlugin } from '../../proxy/gateway-plugin.ts';
import { createRevokedGrantsCache } from '../../grants/revoked-grants.ts';
import { createEndGrant } from '../../grants/end-grant.ts';
import { createUpstreamClient } from '../../upstream/upstream-client.ts';

/**
 * `gatehouse start`: load the configuration, open the store, load the keys, mount every part on the server, listen,
 * and run until SIGTERM/SIGINT. Without a config file this is the local demo (`npm start`).
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
}

/** Test seams and embedder options for assembleGatewayParts; production passes none. */
export interface AssembleOptions {
  /** The CIMD fetch guard's test seams (a resolver and a loopback exception for one test host). */
  clientMetadataFetch?: AuthorizationServerDeps['clientMetadataFetch'];
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
    const demoModule = ctx.config.mode === 'demo' ? await import('../../demo/run-demo.ts') : undefined;
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
    }
    const { config } = ctx;
    if (!config.upstream) throw new CliUsageError('upstream: required — the identity provider users sign in with');

    const metrics = createMetrics({ clock: ctx.clock });
    // Every part's store calls are timed for `gatehouse_store_operation_duration_seconds`; the server's own health
    // check keeps the plain store (startGateway closes that one).
    ctx = { ...ctx, store: instrumentStore(ctx.store, metrics) };
    const upstream = createUpstreamClient({ ...ctx, config: config.upstream, metrics });
    const broker = createTokenBroker({
      config,
      store: ctx.store,
      keyring: ctx.keyring,
      clock: ctx.clock,
      logger: ctx.logger,
      upstream,
      metrics: createBrokerMetrics(metrics.registry),
      gatehouseMetrics: metrics,
    });
    const revokedGrants = createRevokedGrantsCache({
      store: ctx.store,
      clock: ctx.clock,
      onError: (error) => ctx.logger.warn({ err: error }, 'revoked-grants re-sync failed'),
    });
    await revokedGrants.start();
    cleanups.push(() => revokedGrants.stop());
    // The one grant-ending function every part uses (src/grants/end-grant.ts), logging each end with its reason.
    const endGrant = createEndGrant({
      store: ctx.store,
      clock: ctx.clock,
      accessTokenTtlSeconds: config.authorization.accessTokenTtlSeconds,
      onEnded: (grantId, reason) => ctx.logger.info({ grantId, reason }, 'grant ended'),
    });

    const authorization = await createAuthorizationServer(ctx, {
      upstream,
      // The console signs in through the same IdP and `/callback`; the callback hands its completions over.
      consoleSignIn: completeConsoleSignIn,
      metrics,
      endGrant,
      grantTypes: [(provider) => registerTokenExchangeGrant(provider, { config, publicUrl: ctx.publicUrl, keyring: ctx.keyring, clock: ctx.clock, broker })],
      ...(options.clientMetadataFetch ? { clientMetadataFetch: options.clientMetadataFetch } : {}),
    });
    const plugins: FastifyPluginAsync[] = [
      requestMetrics(metrics),
      createAdminPlugin(ctx, { upstream, metrics, endGrant }),
      authorization.plugin,
      createGatewayPlugin(ctx, { broker, revokedGrants, endGrant, metrics }),
      createMetricsPlugin(ctx, metrics),
    ];
    if (config.admin.metricsPort !== undefined) {
      const listener = await startMetricsListener(ctx, metrics);
      cleanups.push(() => listener.close());
    }
    const banner = demo
      ? (await import('../../demo/demo-banner.ts')).demoBanner({
          publicUrl: ctx.publicUrl,
          mcpPath: demo.graphRoute?.path ?? config.routes[0]?.path ?? '/mcp',
          identityProviderUrl: demo.identityProvider.issuer,
          directoryApiUrl: demo.directoryApi.url,
          graphServerUrl: demo.graphServer?.url,
          users: demo.users,
          adminGroups: ctx.config.admin.groups,
        })
      : config.routes.map((entry) => `MCP route: ${ctx.publicUrl}${entry.path} → ${entry.backend}`);
    return { plugins, readinessChecks: { upstream: upstreamReadinessCheck(upstream) }, banner, close };
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

export interface StartGatewayOptions {
  file?: string;
  port?: string;
  logLevel?: LevelWithSilent;
  io: CliIo;
  clock?: Clock;
  signals?: SignalSource;
  /** Replaces assembleGatewayParts (tests). */
  assembleParts?: (ctx: GatehouseContext) => Promise<GatewayParts>;
}

export interface RunningGateway {
  /** The address it listens on, e.g. `http://127.0.0.1:8080`. */
  url: string;
  app: FastifyInstance;
  lifecycle: GracefulShutdown;
}

const logLevels: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function listenError(error: unknown, host: string, port: number): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'EADDRINUSE') return new CliUsageError(`port ${port} is in use — stop the other process or pass --port`);
  if (code === 'EACCES') return new CliUsageError(`port ${port} needs elevated privileges — pass --port with a port above 1023`);
  if (code === 'EADDRNOTAVAIL') return new CliUsageError(`server.host ${host} is not an address of this machine`);
  return error;
}

/**
 * Fails fast when the gateway's port is taken, before the demo stand-ins start (they would otherwise start and stop
 * again, and a taken stand-in port would hide the gateway's). `listen` still reports a port taken in between.
 */
async function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (error) => reject(listenError(error, host, port)));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** Starts everything and returns once the server listens; `lifecycle.stopped` resolves when it has shut down. */
export async function startGateway(options: StartGatewayOptions): Promise<RunningGateway> {
  const { io } = options;
  const clock = options.clock ?? systemClock;
  const loaded = loadConfig({
    file: options.file,
    env: io.env,
    cwd: io.cwd,
    flags: options.port === undefined ? undefined : { port: options.port },
  });
  for (const warning of loaded.warnings) io.stderr(`warning: ${warning}\n`);
  const { config, publicUrl } = loaded;
  await assertPortFree(config.server.host, config.server.port);
  const logger = createLogger({ level: options.logLevel ?? config.log.level });

  const cleanups: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    const store = await openStore(config.store, { clock, logger }).catch((error: unknown) => {
      if (error instanceof StoreUnavailableError) throw new CliUsageError(`store unavailable: ${error.message}`);
      throw error;
    });
    cleanups.push(() => store.close());
    const keyring = await loadKeyring({ store, keysConfig: config.keys, clock, logger, random: cryptoRandom });
    cleanups.push(() => keyring.close());

    const ctx: GatehouseContext = { config, publicUrl, store, keyring, clock, random: cryptoRandom, logger, fetch: globalThis.fetch };
    const parts = await (options.assembleParts ?? assembleGatewayParts)(ctx);
    if (parts.close) cleanups.push(parts.close);

    const app = await buildServer(ctx, { plugins: parts.plugins, readinessChecks: parts.readinessChecks });
    cleanups.push(() => app.close());
    const { host, port } = config.server;
    const url = await app.listen({ host, port }).catch((error: unknown) => {
      throw listenError(error, host, port);
    });
    cleanups.pop(); // from here on the graceful shutdown closes the server

    const lifecycle = installGracefulShutdown(app, {
      graceMs: config.server.shutdownGraceMs,
      logger,
      closeResources: closeAll,
      signals: options.signals,
    });
    io.stdout(`Gatehouse (${config.mode}) listening on ${url} — issuer ${publicUrl}, store ${config.store.type}\n`);
    io.stdout(`  health: ${url}/healthz  readiness: ${url}/readyz\n`);
    for (const line of parts.banner ?? []) io.stdout(`  ${line}\n`);
    return { url, app, lifecycle };
  } catch (error) {
    await closeAll().catch(() => {});
    throw error;
  }
}

export const startCommand: CliCommand = {
  path: ['start'],
  summary: 'Start the gateway (without --config: the local demo) and run until SIGTERM or Ctrl-C.',
  options: {
    config: { type: 'string', short: 'c', description: 'Config file (default: $GATEHOUSE_CONFIG, else the local demo).' },
    port: { type: 'string', short: 'p', description: 'Port to listen on, overriding server.port.' },
    'log-level': { type: 'string', description: `Log level: ${logLevels.join(', ')} (default: log.level from the config, info).` },
  },
  async run({ values, io }) {
    const logLevel = values['log-level'];
    if (logLevel !== undefined && !logLevels.includes(logLevel as LevelWithSilent)) {
      throw new CliUsageError(`--log-level must be one of ${logLevels.join(', ')} (got "${String(logLevel)}")`);
    }
    const running = await startGateway({
      file: typeof values.config === 'string' ? values.config : undefined,
      port: typeof values.port === 'string' ? values.port : undefined,
      logLevel: logLevel as LevelWithSilent | undefined,
      io,
    });
    return running.lifecycle.stopped;
  },
};
