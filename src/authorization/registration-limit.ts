import type { FastifyRequest } from 'fastify';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { addressBudgetKey, isLoopbackAddress } from './address-policy.ts';
import { registrationRateCounter } from '../records/authorization.ts';
import { incrementCounter } from '../store/record-access.ts';

/**
 * The per-address budget of RFC 7591 registrations. Each registration is a stored record, so unbounded registration
 * is a storage-exhaustion attack; the counter lives in the store so the limit holds across replicas and restarts.
 *
 * Windows are fixed hours aligned to the clock and the key carries the window, so the refusal can say exactly when
 * the budget comes back (RFC 9110 §10.2.3 `Retry-After`) instead of always "an hour".
 */
const WINDOW_MS = 3_600_000;

/**
 * The key a registration is counted under: the client's address, an IPv6 one by its /64 (addressBudgetKey).
 * `request.ip` is undefined when the client already went away or the server listens on a Unix socket without
 * `trustProxy`; those requests share one budget, so the limit still holds (and the store is never handed an
 * undefined key).
 */
export function registrationRateKey(request: FastifyRequest): string {
  return request.ip === undefined ? 'unknown-address' : addressBudgetKey(request.ip);
}

/**
 * The budget for this address. A developer reconnecting clients on this machine registers far more than any real
 * client; `perLoopbackIpPerHour` lifts the budget for loopback peers only. It stays equal to `perIpPerHour` unless set,
 * because behind a reverse proxy without `trustProxy` every client looks like loopback.
 */
function registrationBudget(ctx: GatehouseContext, address: string | undefined): number {
  const { perIpPerHour, perLoopbackIpPerHour } = ctx.config.authorization.dynamicRegistration;
  if (perLoopbackIpPerHour !== undefined && address !== undefined && isLoopbackAddress(address)) return perLoopbackIpPerHour;
  return perIpPerHour;
}

/** Throws `rate_limited` (429 + the exact `Retry-After`) once this address spent its registrations for the hour. */
export async function guardRegistration(ctx: GatehouseContext, request: FastifyRequest): Promise<void> {
  if (request.method !== 'POST') return;
  const now = ctx.clock.now();
  const window = Math.floor(now / WINDOW_MS);
  // Two windows of TTL, so clock skew between replicas cannot drop a live counter early.
  const count = await incrementCounter(ctx.store, registrationRateCounter, `${window}:${registrationRateKey(request)}`, 7200);
  if (count <= registrationBudget(ctx, request.ip)) return;
  const retryAfter = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000));
  throw new ProtocolError('rate_limited', `Too many client registrations from this address; retry in ${retryAfter} s.`, {
    headers: { 'retry-after': String(retryAfter) },
  });
}
