import type { RouteConfig } from '../config/schema.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';
import { rateLimitCounter } from '../records/proxy.ts';
import { incrementCounter } from '../store/record-access.ts';
import { ProtocolError } from '../errors/protocol-error.ts';

/**
 * Per-user and per-client request budgets on MCP routes, as fixed one-minute windows.
 *
 * The counters live in the store (atomic `increment`), so on Redis N replicas share one budget instead of each
 * granting the full limit. Touching the store on every request would put two round trips on the hot path, so each
 * replica counts locally and adds its count to the shared counter every `flushIntervalMs`, learning the other
 * replicas' total in the same call. A request is refused when the shared total plus the local unflushed count
 * reaches the limit. The cost of batching: the replicas together may overshoot by what they admit within one flush
 * interval before seeing each other's counts — a deliberate trade for a budget, not a security boundary.
 * (@fastify/rate-limit and rate-limiter-flexible were considered: neither stores counters in node:sqlite, and both
 * make a Redis round trip per request where this batches.)
 */
export interface RateLimiter {
  /** Throws `rate_limited` (429 + `Retry-After`) when either budget for the current minute is spent. */
  consume(route: RouteConfig, subject: string, clientId: string): void;
  /** Adds local counts to the shared counters now (also runs on a timer). */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

interface Counter {
  /** The shared counter's key without its window: `u:<route>:<subject>` or `c:<route>:<client>`. */
  key: string;
  window: number;
  /** Total across replicas as of the last flush (including this replica's flushed counts). */
  shared: number;
  /** Counted here since the last flush. */
  pending: number;
  /** Counted here and being added to the shared counter now: still counted until the store's total includes it. */
  flushing: number;
}

const WINDOW_MS = 60_000;

export function createRateLimiter(options: {
  store: Store;
  clock: Clock;
  flushIntervalMs?: number;
  onError?: (error: unknown) => void;
  /** Called once per refused request with the budget that was spent (for `gatehouse_rate_limit_rejections_total`). */
  onRejected?: (limit: 'user' | 'client') => void;
}): RateLimiter {
  const { store, clock, flushIntervalMs = 100, onError = () => {}, onRejected = () => {} } = options;
  // By route, then by subject (the user budget) or client id (the client budget): a request looks its counters up
  // with strings it already holds (the route's path, the token's claims, cached with it), so none is built and
  // hashed per request. A counter's shared key is built once, when its window starts.
  const routes = new Map<string, { users: Map<string, Counter>; clients: Map<string, Counter> }>();
  let flushing: Promise<void> | undefined;

  function count(counters: Map<string, Counter>, budget: 'u' | 'c', path: string, who: string, window: number, limit: number): boolean {
    let counter = counters.get(who);
    if (!counter || counter.window !== window) {
      counter = { key: `${budget}:${path}:${who}`, window, shared: 0, pending: 0, flushing: 0 };
      counters.set(who, counter);
    }
    if (counter.shared + counter.flushing + counter.pending >= limit) return false;
    counter.pending++;
    return true;
  }

  async function flushNow(): Promise<void> {
    const window = Math.floor(clock.now() / WINDOW_MS);
    const work: Promise<void>[] = [];
    for (const { users, clients } of routes.values()) {
      for (const counters of [users, clients]) {
        for (const [who, counter] of counters) {
          if (counter.window < window - 1) {
            counters.delete(who);
            continue;
          }
          flushCounter(counter, work);
        }
      }
    }
    await Promise.all(work);
  }

  /** Adds the counter's local count to the shared one (its promise joins `work`). */
  function flushCounter(counter: Counter, work: Promise<void>[]): void {
    if (counter.pending === 0) return;
    const by = counter.pending;
    counter.pending = 0;
    // Until the store answers, these requests are neither pending nor in `shared`: without `flushing` a request
    // arriving meanwhile saw a budget short by them (a full event-loop turn on SQLite, a round trip on Redis).
    counter.flushing += by;
    // The key carries the window, so the counter expires with it (two windows of TTL cover clock skew).
    work.push(
      incrementCounter(store, rateLimitCounter, `${counter.window}:${counter.key}`, 120, by).then(
        (total) => {
          counter.shared = Math.max(counter.shared, total);
          counter.flushing -= by;
        },
        (error: unknown) => {
          counter.flushing -= by;
          counter.pending += by;
          throw error;
        },
      ),
    );
  }

  const flush = (): Promise<void> => {
    flushing ??= flushNow().finally(() => (flushing = undefined));
    return flushing;
  };
  const timer = setInterval(() => flush().catch(onError), flushIntervalMs);
  timer.unref();

  return {
    consume(route, subject, clientId) {
      const now = clock.now();
      const window = Math.floor(now / WINDOW_MS);
      let counters = routes.get(route.path);
      if (counters === undefined) routes.set(route.path, (counters = { users: new Map(), clients: new Map() }));
      const userOk = count(counters.users, 'u', route.path, subject, window, route.rateLimit.perUserPerMinute);
      const clientOk = userOk && count(counters.clients, 'c', route.path, clientId, window, route.rateLimit.perClientPerMinute);
      if (userOk && clientOk) return;
      onRejected(userOk ? 'client' : 'user');
      const retryAfter = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000));
      throw new ProtocolError('rate_limited', `Too many requests to ${route.path}; retry in ${retryAfter} s.`, {
        headers: { 'retry-after': String(retryAfter) },
      });
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush().catch(onError);
    },
  };
}
