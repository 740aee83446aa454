import { cappedFetch, PROVIDER_RESPONSE_LIMIT_BYTES } from '../runtime/capped-fetch.ts';
import { createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream, LevelWithSilent, Logger } from 'pino';
import { keepHeapAcrossIdleGaps, releaseStartupMemory, returnHeapWhenQuiet } from '../runtime/process-heap.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import { isDamagedDatabase } from '../store/sqlite-database.ts';
import { chooseLogFormat, prettyDestination } from '../server/log-destination.ts';
import { loadKeyring } from '../keys/load-keyring.ts';
import { systemClock, type Clock } from '../runtime/clock.ts';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { cryptoRandom } from '../runtime/random.ts';
import { buildServer } from '../server/app.ts';
import { takeStartingHangup } from '../runtime/starting-hangup.ts';
import { installGracefulShutdown, type GracefulShutdown, type SignalSource } from '../server/graceful-shutdown.ts';
import { createLogger } from '../server/logger.ts';
import { loadTracing } from './load-tracing.ts';
import { indexGrantsWrittenBefore } from '../store/oidc-index-backfill.ts';
import { openStore } from '../store/open-store.ts';
import { checkBackends } from '../admin/doctor.ts';
import { StoreUnavailableError } from '../store/store.ts';
import { GatehouseError } from '../errors/internal-errors.ts';
import { assembleGatewayParts, type AssembleOptions, type GatewayParts } from './assemble-parts.ts';
import { createConfigReloader, type ReloadTarget } from './reload-config.ts';
import { preflight } from './preflight.ts';

/** How often a running gateway indexes grants written without their indexes (see indexGrantsWrittenBefore). */
const GRANT_REINDEX_INTERVAL_MS = 3_600_000;

/** Where `start` prints and what environment it reads (the CLI passes its own; tests capture them). */
export interface AppIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Whether the process's stdout is a terminal (pretty, coloured logs with `log.format: auto`). */
  stdoutIsTTY?: boolean;
}

export interface StartGatewayOptions {
  file?: string;
  port?: string;
  logLevel?: LevelWithSilent;
  io: AppIo;
  clock?: Clock;
  signals?: SignalSource;
  /** Replaces assembleGatewayParts (tests). */
  assembleParts?: (ctx: GatehouseContext, options: AssembleOptions) => Promise<GatewayParts>;
  /** How often grants written without their indexes are indexed after start; an hour by default (tests shorten it). */
  grantReindexIntervalMs?: number;
  /**
   * The process is the gateway's own (src/runtime/process-heap.ts): a full collection before listening, the heap
   * kept as the load sized it across idle gaps, and returned after minutes without traffic. `gatehouse start` asks
   * for it; a gateway started inside another program (tests) does not, since it would manage that program's heap too.
   */
  ownsProcessHeap?: boolean;
}

export interface RunningGateway {
  /** The address it listens on, e.g. `http://127.0.0.1:8080`. */
  url: string;
  app: FastifyInstance;
  lifecycle: GracefulShutdown;
}

function listenError(error: unknown, host: string, port: number): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'EADDRINUSE') return new GatehouseError('GH_USAGE', `port ${port} is in use — stop the other process or pass --port`);
  if (code === 'EACCES') return new GatehouseError('GH_USAGE', `port ${port} needs elevated privileges — pass --port with a port above 1023`);
  if (code === 'EADDRNOTAVAIL') return new GatehouseError('GH_USAGE', `server.host ${host} is not an address of this machine`);
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

/** Pretty lines for people (demo, terminal), pino's JSON for machines; see src/server/log-destination.ts. */
function logDestination(config: GatehouseConfig, io: AppIo): { destination?: DestinationStream } {
  const format = chooseLogFormat({ format: config.log.format, mode: config.mode, stdoutIsTTY: io.stdoutIsTTY === true });
  if (format === 'json') return {};
  return { destination: prettyDestination({ colors: io.stdoutIsTTY === true && !io.env.NO_COLOR }) };
}

/** SIGHUP reloads the file (what systemd's `ExecReload=kill -HUP $MAINPID` and `kubectl exec … kill -HUP 1` send). */
function watchReloadSignal(signals: SignalSource, reload: () => void, lifecycle: GracefulShutdown, logger: Logger): () => void {
  const onHangup = () => {
    // A signal handler that throws would end the process: a reload that fails unexpectedly only logs.
    try {
      reload();
    } catch (error) {
      logger.error({ err: error }, 'configuration reload failed — the running configuration is unchanged');
    }
  };
  signals.on('SIGHUP', onHangup);
  void lifecycle.stopped.then(() => signals.off('SIGHUP', onHangup));
  return onHangup;
}

/**
 * Starts everything and returns once the server listens; `lifecycle.stopped` resolves when it has shut down.
 *
 * SIGHUP is handled from the first moment: its default action ends the process, and an operator who edits a shared
 * file and signals every replica (`systemctl reload`, `kubectl exec … kill -HUP 1`) killed, without a word, one that
 * was starting. One that arrives while starting is remembered, and the file read again once the gateway listens:
 * the edit it announced may have come after this start read the file.
 */
export async function startGateway(options: StartGatewayOptions): Promise<RunningGateway> {
  const signals = options.signals ?? process;
  let hungUpWhileStarting = false;
  const whileStarting = () => {
    hungUpWhileStarting = true;
  };
  signals.on('SIGHUP', whileStarting);
  // One the command line took while this process loaded (bin/gatehouse.js).
  if (takeStartingHangup()) hungUpWhileStarting = true;
  try {
    return await startListening(options, () => hungUpWhileStarting);
  } finally {
    signals.off('SIGHUP', whileStarting);
  }
}

async function startListening(options: StartGatewayOptions, hungUpWhileStarting: () => boolean): Promise<RunningGateway> {
  const { io } = options;
  const clock = options.clock ?? systemClock;
  // The same checks as `config check` and `doctor`: a configuration refused here is refused there too (exit 2).
  const loadOptions = {
    file: options.file,
    env: io.env,
    cwd: io.cwd,
    flags: options.port === undefined ? undefined : { port: options.port },
  };
  const loaded = preflight(loadOptions);
  for (const warning of loaded.warnings) io.stderr(`warning: ${warning}\n`);
  const { config, publicUrl } = loaded;
  await assertPortFree(config.server.host, config.server.port);
  const logger = createLogger({ level: options.logLevel ?? config.log.level, ...logDestination(config, io) });

  const cleanups: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    const store = await openStore(config.store, { clock, logger }).catch((error: unknown) => {
      if (error instanceof StoreUnavailableError) throw new GatehouseError('GH_USAGE', `store unavailable: ${error.message}`);
      throw error;
    });
    cleanups.push(() => store.close());
    // Said once at start, where an operator looks: a setting of the store's own that can lose what Gatehouse keeps.
    for (const risk of (await store.configurationRisks?.().catch(() => [])) ?? []) logger.warn({ risk }, 'store configuration risk');
    // Before anything reads a user's or a client's grants by index (an upgrade from a version without them), and
    // again every hour: during a rolling upgrade a replica of the previous version writes grants without the indexes
    // (or rewrites one, dropping them), after this replica's pass at start.
    await indexGrantsWrittenBefore(store, logger);
    const reindex = setInterval(() => {
      indexGrantsWrittenBefore(store, logger).catch((error: unknown) => {
        logger.warn({ reason: error instanceof Error ? error.message : 'unknown error' }, 'grant indexes not checked; next pass in an hour');
      });
    }, options.grantReindexIntervalMs ?? GRANT_REINDEX_INTERVAL_MS);
    reindex.unref();
    cleanups.push(async () => clearInterval(reindex));
    const keyring = await loadKeyring({ store, keysConfig: config.keys, clock, logger, random: cryptoRandom });
    cleanups.push(() => keyring.close());

    // Outbound answers (the identity provider's, the backends' health probes) are read whole: bounded here.
    const fetch = cappedFetch(globalThis.fetch, PROVIDER_RESPONSE_LIMIT_BYTES);
    const ctx: GatehouseContext = { config, publicUrl, store, keyring, clock, random: cryptoRandom, logger, fetch };
    const tracing = await loadTracing(io.env, logger);
    // Closed last of all: the spans of the final requests are exported after the server stopped.
    cleanups.unshift(() => tracing.shutdown());
    // Only a gateway started from a file can reload one (the demo without a file has nothing to read again).
    const configFile = options.file ?? (io.env.GATEHOUSE_CONFIG || undefined);
    let reloadTarget: ReloadTarget | undefined;
    const reloadConfig = configFile === undefined ? undefined : createConfigReloader({ load: loadOptions, target: () => reloadTarget, logger, now: () => clock.now() });
    // A reload also reads the key set again: after `gatehouse keys revoke` on a SQLite store or a key file, whose
    // change no message announces across processes, SIGHUP is how the operator makes a running gateway drop the
    // revoked key now rather than at its next timed reload (within a minute).
    const reloadKeys = (): void => void keyring.reload();
    const consoleReload = reloadConfig && (async () => (await keyring.reload(), reloadConfig('admin console')));
    const parts = await (options.assembleParts ?? assembleGatewayParts)(ctx, { tracing, ...(consoleReload && reloadConfig ? { reloadConfig: consoleReload, lastReload: reloadConfig.last } : {}) });
    reloadTarget = parts.reloadTarget;
    if (parts.close) cleanups.push(parts.close);

    const app = await buildServer(ctx, { plugins: parts.plugins, readinessChecks: parts.readinessChecks });
    cleanups.push(() => app.close());
    const { host, port } = config.server;
    if (options.ownsProcessHeap === true) releaseStartupMemory();
    const url = await app.listen({ host, port }).catch((error: unknown) => {
      throw listenError(error, host, port);
    });
    cleanups.pop(); // from here on the graceful shutdown closes the server
    if (options.ownsProcessHeap === true) {
      keepHeapAcrossIdleGaps();
      const stopWatching = returnHeapWhenQuiet({ onFailure: (error) => logger.warn({ err: error }, 'returning the heap after a quiet stretch failed') });
      cleanups.push(async () => stopWatching());
    }

    const lifecycle = installGracefulShutdown(app, {
      graceMs: config.server.shutdownGraceMs,
      logger,
      closeResources: closeAll,
      signals: options.signals,
    });
    // Always handled: SIGHUP's default action would end the process.
    const onHangup = reloadConfig
      ? () => (reloadKeys(), void reloadConfig('SIGHUP'))
      : () => (reloadKeys(), logger.warn('SIGHUP: the key set is read again; started without a configuration file, there is no file to reload'));
    const hangUp = watchReloadSignal(options.signals ?? process, onHangup, lifecycle, logger);
    // A route whose backend is down answers 502 while the rest serve: said once now, where the operator looks, not
    // learnt from the first client's error (readiness leaves backends out for that reason: see doctor.ts).
    void checkBackends(config)
      .then((check) => {
        if (check.status !== 'ok' && config.routes.length > 0 && !app.lifecycle.draining) {
          logger.warn({ backends: check.detail }, 'a route backend does not accept connections; its route answers 502 until it does');
        }
      })
      .catch(() => undefined);
    // After every start-up log line, in one write: a log line from a timer or a stand-in cannot land inside it.
    logger.flush();
    io.stdout(
      [
        `Gatehouse (${config.mode}) listening on ${url} — issuer ${publicUrl}, store ${config.store.type}`,
        `  health: ${url}/healthz  readiness: ${url}/readyz`,
        // Blank lines stay blank (an indented empty line is trailing spaces in a terminal or a copied log).
        ...(parts.banner ?? []).map((line) => (line === '' ? '' : `  ${line}`)),
      ].join('\n') + '\n',
    );
    if (hungUpWhileStarting()) {
      logger.info('SIGHUP received while starting: reading the configuration file again');
      hangUp();
    }
    return { url, app, lifecycle };
  } catch (error) {
    await closeAll().catch(() => {});
    // The store opened, then a step of the start found its file damaged (a SQLite file whose pages are corrupt opens,
    // and fails its first read): a refusal to start, exit 2 as when it does not open, so a supervisor does not
    // restart it in a loop. A store that may come back (a lock held, Redis failing over) stays a failed start (exit 1).
    if (error instanceof StoreUnavailableError && isDamagedDatabase(error) && config.store.type === 'sqlite') {
      throw new GatehouseError('GH_USAGE', `store unavailable: the SQLite store at ${config.store.sqlitePath} is damaged (${error.cause instanceof Error ? error.cause.message : 'unreadable'}): restore it from a backup (docs/operations.md, "Backups of the SQLite store")`);
    }
    throw error;
  }
}
