import { decodeJwt } from 'jose';
import type { Clock } from '../../runtime/clock.ts';
import { UpstreamError } from '../errors.ts';

/**
 * Where a federated client assertion comes from: a JWT issued to this workload by a platform the upstream trusts
 * (a federated identity credential on the Entra app: issuer + subject + audience). Nothing here is a secret we keep:
 * the platform rotates it, so it is read fresh and never captured once at start-up.
 */
export interface AssertionSource {
  /** For logs and errors: `token-file`, `app-service`, `imds`, `workload-issuer`. */
  readonly kind: string;
  /** A JWT for audience `api://AzureADTokenExchange` (or the configured one). */
  fetchAssertion(): Promise<string>;
}

export interface FederatedAssertionProvider {
  /** A current assertion; a new one once the cached one is within `refreshBeforeExpiryMs` of its `exp`. */
  getAssertion(): Promise<string>;
}

/** Assertions live 1 h (AKS, App Service) down to 10 min; renewing 2 min early covers clock skew and a slow IdP. */
export const DEFAULT_REFRESH_BEFORE_EXPIRY_MS = 2 * 60_000;

/** `exp` of an assertion in epoch ms; an assertion without one is refused (we could never tell it went stale). */
export function assertionExpiry(assertion: string, kind: string): number {
  let exp: unknown;
  try {
    exp = decodeJwt(assertion).exp;
  } catch (cause) {
    throw new UpstreamError('server_error', `The federated assertion from ${kind} is not a JWT.`, {}, { cause });
  }
  if (typeof exp !== 'number') {
    throw new UpstreamError('server_error', `The federated assertion from ${kind} has no exp claim.`);
  }
  return exp * 1000;
}

/**
 * Caches an assertion only until shortly before its `exp` (the defect this replaces fetched it once at start and
 * failed an hour later). Concurrent callers share one fetch. Sources that are cheap to re-read (the projected token
 * file) are read on every call anyway, so a rotated file is picked up at once.
 */
export function createFederatedAssertionProvider(options: {
  source: AssertionSource;
  clock: Clock;
  refreshBeforeExpiryMs?: number;
  /** Re-read the source on every call (projected token files: the kubelet rotates them in place). */
  cache?: boolean;
}): FederatedAssertionProvider {
  const { source, clock, refreshBeforeExpiryMs = DEFAULT_REFRESH_BEFORE_EXPIRY_MS, cache = true } = options;
  let cached: { assertion: string; expiresAt: number } | undefined;
  let inFlight: Promise<string> | undefined;

  const fresh = (entry: { expiresAt: number }, marginMs: number) => clock.now() < entry.expiresAt - marginMs;

  async function fetchFresh(): Promise<string> {
    const assertion = (await source.fetchAssertion()).trim();
    const expiresAt = assertionExpiry(assertion, source.kind);
    if (!fresh({ expiresAt }, 0)) {
      throw new UpstreamError('server_error', `The federated assertion from ${source.kind} has already expired.`);
    }
    if (cache) cached = { assertion, expiresAt };
    return assertion;
  }

  return {
    async getAssertion() {
      if (cached && fresh(cached, refreshBeforeExpiryMs)) return cached.assertion;
      inFlight ??= fetchFresh().finally(() => {
        inFlight = undefined;
      });
      return inFlight;
    },
  };
}
