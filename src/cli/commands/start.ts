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

/**
 * THE place where the parts of Gatehouse are plugged in. In `mode: demo` it also starts the local stand-ins
 * (identity provider, sample Graph MCP server, directory API) before the gateway, since the gateway discovers them.
 * TODO(lead): mount the authorization server, resource metadata and MCP proxy plugins, and the demo components.
 */
export async function assembleGatewayParts(_ctx: GatehouseContext): Promise<GatewayParts> {
  return { plugins: [] };
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
  const logger = createLogger({ level: options.logLevel ?? 'info' });

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
    'log-level': { type: 'string', description: `Log level: ${logLevels.join(', ')} (default info).` },
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
