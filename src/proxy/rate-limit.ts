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
 * granting the full limit. Touching the store on every request would put a round trip on the hot path, so a replica
 * claims the budget in leases: it adds a lease (leaseFor: what it admitted so far, at most a twentieth of the limit)
 * to the shared counter and admits that many requests locally, claiming the next lease in the background once half
 * of this one is used.
 * The shared counter is what every replica has claimed, so together they never admit more than the limit: a replica
 * that admitted what it had counted but not yet shared (the earlier design, a batched flush) let a burst spread over
 * N replicas through N times, each new window (4 bursts of 40 over two replicas, limit 10: 16–20 admitted each). The
 * cost is the other way: what replicas claimed and did not use is not admitted elsewhere (leaseFor keeps it small).
 * A request waits for the store only when its replica holds no lease — the first few in a window, while leases are
 * of one; every request under a limit below 40 a minute; a lease used up before the next one came — and a store that
 * cannot be reached leaves the replica counting on its own, against the whole limit, until the window ends (a
 * budget, not a security boundary: an outage does not refuse every call).
 * (@fastify/rate-limit and rate-limiter-flexible were considered: neither stores counters in node:sqlite, and both
 * make a Redis round trip per request where this claims leases.)
 */
export interface RateLimiter {
  /**
   * Admits one request, or throws `rate_limited` (429 + `Retry-After`) when either budget for the current minute is
   * spent. Synchronous while the replica holds a lease; otherwise a promise, settled once the store answered.
   */
  consume(route: RouteConfig, subject: string, clientId: string): void | Promise<void>;
  stop(): Promise<void>;
}

interface Counter {
  /** The shared counter's key: `<minute>:u:<route>:<subject>` or `<minute>:c:<route>:<client>`. */
  key: string;
  window: number;
  /** Admitted here in this window. */
  used: number;
  /** Claimed from the shared counter by this replica in this window: it admits up to this many. */
  claimed: number;
  /** The shared counter as of this replica's last claim: at the limit, nothing is left to claim this window. */
  known: number;
  /** A lease on its way from the store: a request past `claimed` waits for it. */
  claiming: Promise<void> | undefined;
  /** The store could not be reached: counted here alone, against the whole limit, until the window ends. */
  alone: boolean;
}

const WINDOW_MS = 60_000;

/**
 * The next lease: as many as this replica admitted so far in the window (its share of the user's traffic, doubling
 * as it goes on), at most a twentieth of the limit or of what is left of it, 1 to 256. What replicas claim and do not
 * use is what lease sizes cost: a fixed twentieth of the limit, each replica holding up to one and a half unused,
 * refused users at half their limit on 40 replicas; leases that follow each replica's own traffic and shrink as the
 * budget runs out leave far less unused, however many replicas share it.
 */
const leaseFor = (counter: Counter, limit: number) => Math.max(1, Math.min(256, Math.floor(limit / 20), Math.floor((limit - counter.known) / 20), counter.used));

export function createRateLimiter(options: {
  store: Store;
  clock: Clock;
  onError?: (error: unknown) => void;
  /** Called once per refused request with the budget that was spent (for `gatehouse_rate_limit_rejections_total`). */
  onRejected?: (limit: 'user' | 'client') => void;
}): RateLimiter {
  const { store, clock, onError = () => {}, onRejected = () => {} } = options;
  // By route, then by subject (the user budget) or client id (the client budget): a request looks its counters up
  // with strings it already holds (the route's path, the token's claims, cached with it), so none is built and
  // hashed per request. A counter's shared key is built once, when its window starts.
  const routes = new Map<string, { users: Map<string, Counter>; clients: Map<string, Counter> }>();

  function counterOf(counters: Map<string, Counter>, budget: 'u' | 'c', path: string, who: string, window: number): Counter {
    let counter = counters.get(who);
    if (!counter || counter.window !== window) {
      counter = { key: `${window}:${budget}:${path}:${who}`, window, used: 0, claimed: 0, known: 0, claiming: undefined, alone: false };
      counters.set(who, counter);
    }
    return counter;
  }

  /** True (admitted), false (the budget is spent), or a promise of either once the store answered a claim. */
  function admit(counter: Counter, limit: number): boolean | Promise<boolean> {
    if (counter.used < counter.claimed || (counter.alone && counter.used < limit)) {
      counter.used += 1;
      // Half of the lease used: the next one is claimed now, so the requests after it need not wait. Not for leases
      // of one (limits under 40 a minute, a window's first requests): a lease claimed ahead would be budget each
      // replica held unused, a quarter of a limit of 4 on two replicas, to spare a round trip.
      const lease = leaseFor(counter, limit);
      if (lease > 1 && !counter.alone && counter.known < limit && counter.claiming === undefined && counter.claimed - counter.used <= lease / 2) {
        void claim(counter, limit);
      }
      return true;
    }
    // `known` against the limit as it is now: a reload that raised it opens the budget again this window.
    if (counter.alone || counter.known >= limit) return false;
    // Each claim adds at least one request to `claimed`, or ends the claiming (`known` at the limit, `alone`): this
    // recursion ends.
    return claim(counter, limit).then(() => admit(counter, limit));
  }

  /** Claims the next lease (one claim at a time per counter; every waiter shares it). Never rejects. */
  function claim(counter: Counter, limit: number): Promise<void> {
    const lease = leaseFor(counter, limit);
    // The key carries the window, so the counter expires with it (two windows of TTL cover clock skew).
    counter.claiming ??= incrementCounter(store, rateLimitCounter, counter.key, 120, lease)
      .then(
        (total) => {
          // A store answering no count would leave the claim neither granted nor spent, and its waiters claiming
          // for ever: counted alone instead.
          if (!Number.isSafeInteger(total)) throw new Error(`the store answered ${String(total)} for a counter`);
          const before = total - lease;
          if (before < limit) counter.claimed += Math.min(lease, limit - before);
          counter.known = Math.max(counter.known, total);
        },
      )
      .catch((error: unknown) => {
        counter.alone = true;
        onError(error);
      })
      .finally(() => (counter.claiming = undefined));
    return counter.claiming;
  }

  function refuse(limit: 'user' | 'client', window: number, now: number, route: RouteConfig): never {
    onRejected(limit);
    const retryAfter = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000));
    throw new ProtocolError('rate_limited', `Too many requests to ${route.path}; retry in ${retryAfter} s.`, {
      headers: { 'retry-after': String(retryAfter) },
    });
  }

  /** The client budget, once the user budget admitted the request (no closure per request: this is the hot path). */
  function admitClient(clients: Map<string, Counter>, route: RouteConfig, clientId: string, window: number, now: number): void | Promise<void> {
    const admitted = admit(counterOf(clients, 'c', route.path, clientId, window), route.rateLimit.perClientPerMinute);
    if (admitted === true) return;
    if (admitted === false) refuse('client', window, now, route);
    return admitted.then((ok) => (ok ? undefined : refuse('client', window, now, route)));
  }

  // Counters of past windows are dropped once a minute (a request only ever reads its own window's).
  const timer = setInterval(() => {
    const window = Math.floor(clock.now() / WINDOW_MS);
    for (const { users, clients } of routes.values()) {
      for (const counters of [users, clients]) for (const [who, counter] of counters) if (counter.window < window) counters.delete(who);
    }
  }, WINDOW_MS);
  timer.unref();

  return {
    consume(route, subject, clientId) {
      const now = clock.now();
      const window = Math.floor(now / WINDOW_MS);
      let counters = routes.get(route.path);
      if (counters === undefined) routes.set(route.path, (counters = { users: new Map(), clients: new Map() }));
      const { clients } = counters;
      const user = admit(counterOf(counters.users, 'u', route.path, subject, window), route.rateLimit.perUserPerMinute);
      if (user === true) return admitClient(clients, route, clientId, window, now);
      if (user === false) refuse('user', window, now, route);
      return user.then((ok) => (ok ? admitClient(clients, route, clientId, window, now) : refuse('user', window, now, route)));
    },
    async stop() {
      clearInterval(timer);
      // Claims in flight settle on their own (they never reject); nothing is held here that the store lacks.
      const claims: Promise<void>[] = [];
      for (const { users, clients } of routes.values()) for (const counters of [users, clients]) for (const counter of counters.values()) if (counter.claiming) claims.push(counter.claiming);
      await Promise.all(claims);
    },
  };
}
