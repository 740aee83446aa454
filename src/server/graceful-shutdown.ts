import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

/**
 * Graceful shutdown for rolling deploys: on SIGTERM/SIGINT stop accepting connections, let in-flight requests and
 * open streams (SSE from MCP backends) finish for up to `graceMs`, then cut whatever is still open, close the store
 * and resolve `stopped` with the exit code. A client mid tool call therefore gets its answer instead of a reset,
 * while a stream that would never end (a legacy SSE session) cannot hold the old instance up forever.
 */

export type ShutdownSignal = 'SIGTERM' | 'SIGINT';

/** `process` in production; tests pass an EventEmitter so no real signal is sent to the test runner. */
export interface SignalSource {
  on(event: ShutdownSignal | 'SIGHUP', listener: () => void): unknown;
  off(event: ShutdownSignal | 'SIGHUP', listener: () => void): unknown;
}

export interface GracefulShutdownOptions {
  graceMs: number;
  logger: Logger;
  /** Closes what the server used once it stopped (the store). */
  closeResources: () => Promise<void>;
  signals?: SignalSource;
}

export interface GracefulShutdown {
  /** Starts shutting down (idempotent); resolves like `stopped`. */
  shutdown(reason: string): Promise<number>;
  /** Resolves with the process exit code once the server and resources are closed: 0, or 1 if closing failed. */
  readonly stopped: Promise<number>;
  /** Removes the signal listeners (tests; the CLI keeps them for the process lifetime). */
  dispose(): void;
}

const shutdownSignals: ShutdownSignal[] = ['SIGTERM', 'SIGINT'];

export function installGracefulShutdown(app: FastifyInstance, options: GracefulShutdownOptions): GracefulShutdown {
  const { graceMs, logger, closeResources } = options;
  const signals = options.signals ?? process;
  let resolveStopped: (code: number) => void = () => {};
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });
  let started = false;

  const cutOpenConnections = (why: string) => {
    logger.warn({ why }, 'closing connections still open');
    app.lifecycle.beginCutting();
    app.server.closeAllConnections();
  };

  async function drainAndClose(reason: string): Promise<number> {
    logger.info({ reason, graceMs }, 'shutting down: draining requests and streams');
    app.lifecycle.beginDraining();
    const deadline = setTimeout(() => cutOpenConnections('grace period over'), graceMs);
    deadline.unref();
    let exitCode = 0;
    try {
      // Close order: stop listening; let responses and streams end (or cut them at the deadline), each queueing its
      // audit record as it closes; only then close the parts (the audit log flushes) and, below, the store.
      // Fastify's own close would run the parts' onClose hooks while streams are still open, losing their records.
      app.server.close();
      await app.lifecycle.whenIdle();
      // Every response has closed, so what is left is idle keep-alive connections (and requests whose headers are
      // still arriving). Node's own list of idle connections, which app.close() relies on, missed some of them: after
      // legacy HTTP+SSE message POSTs from a client that kept its connection, a production-started gateway waited out
      // the whole grace period on that idle client (found by the benchmark, whose stop took 10 s and lost its CPU
      // profile). They are closed here, all at once.
      app.server.closeAllConnections();
      // Resolves when every connection has ended (idle keep-alive sockets are closed at once).
      await app.close();
    } catch (error) {
      logger.error({ err: error }, 'error while closing the server');
      exitCode = 1;
    } finally {
      clearTimeout(deadline);
    }
    try {
      await closeResources();
    } catch (error) {
      logger.error({ err: error }, 'error while closing resources');
      exitCode = 1;
    }
    logger.info({ exitCode }, 'stopped');
    return exitCode;
  }

  function shutdown(reason: string): Promise<number> {
    if (!started) {
      started = true;
      drainAndClose(reason).then(resolveStopped, () => resolveStopped(1));
    }
    return stopped;
  }

  const onSignal = (signal: ShutdownSignal) => () => {
    // A second signal (an impatient Ctrl-C, or the orchestrator escalating) skips the rest of the grace period.
    if (started) cutOpenConnections(`second ${signal}`);
    else void shutdown(signal);
  };
  const listeners = shutdownSignals.map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, listener] of listeners) signals.on(signal, listener);

  const dispose = () => {
    for (const [signal, listener] of listeners) signals.off(signal, listener);
  };
  void stopped.then(dispose);

  return { shutdown, stopped, dispose };
}
