import type { FastifyInstance, FastifyRequest } from 'fastify';
import { systemClock } from '../runtime/clock.ts';

/**
 * `/healthz` answers "is the process up" (liveness: restart me if not); `/readyz` answers "can I serve traffic"
 * (readiness: route traffic to me only if so). Readiness runs named checks — the store now; more (upstream
 * discovery) can be added by name — and reports each, without internal error text.
 */

/** The shortest time between two "not ready" warnings for the same cause. */
const NOT_READY_WARNING_INTERVAL_MS = 30_000;

/** Resolves when the dependency is usable; throws (or times out) when it is not. */
export type ReadinessCheck = () => Promise<void>;

export interface HealthOptions {
  checks: Record<string, ReadinessCheck>;
  /** True once shutdown started: the instance stops reporting ready so load balancers drain it. */
  isDraining: () => boolean;
  /** A check that has not answered by then counts as unavailable (an unreachable Redis must not hang probes). */
  checkTimeoutMs?: number;
}

type CheckResult = 'ok' | 'unavailable';

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve('unavailable'), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([check().then((): CheckResult => 'ok'), timeout]);
  } catch {
    return 'unavailable';
  } finally {
    clearTimeout(timer);
  }
}

export function registerHealthRoutes(app: FastifyInstance, options: HealthOptions): void {
  const timeoutMs = options.checkTimeoutMs ?? 2_000;

  app.get('/healthz', async () => ({ status: 'ok' }));

  // A load balancer asks every few seconds: while not ready for the same cause, a line every 30 s (with how many were
  // held back) says so; a new cause (draining begun in an outage, another check failing) is said at once.
  let lastWarning: { cause: string; at: number } | undefined;
  let heldBack = 0;
  const warnNotReady = (request: FastifyRequest, checks: Record<string, unknown>, draining: boolean): void => {
    const cause = JSON.stringify([checks, draining]);
    const now = systemClock.now();
    if (lastWarning?.cause === cause && now - lastWarning.at < NOT_READY_WARNING_INTERVAL_MS) {
      heldBack += 1;
      return;
    }
    // The count held back is of the cause last said, which may not be this one.
    request.log.warn({ checks, draining, ...(heldBack > 0 ? { heldBack } : {}) }, 'not ready');
    lastWarning = { cause, at: now };
    heldBack = 0;
  };
  app.get('/readyz', async (request, reply) => {
    const names = Object.keys(options.checks);
    const results = await Promise.all(names.map((name) => runCheck(options.checks[name] as ReadinessCheck, timeoutMs)));
    const checks = Object.fromEntries(names.map((name, i) => [name, results[i]]));
    const ready = !options.isDraining() && results.every((result) => result === 'ok');
    if (!ready) warnNotReady(request, checks, options.isDraining());
    else [lastWarning, heldBack] = [undefined, 0];
    // Like every 503 of the gateway, it says when to ask again (RFC 9110 §10.2.3): a probe or a load balancer that
    // reads it comes back then, not in a tight loop.
    if (!ready) reply.header('retry-after', '5');
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks });
  });
}
