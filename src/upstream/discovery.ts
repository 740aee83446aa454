import { Configuration, allowInsecureRequests, customFetch, discovery, type ClientAuth, type ServerMetadata } from 'openid-client';
import { z } from 'zod';
import type { Clock } from '../runtime/clock.ts';
import type { EntraProfile } from './entra.ts';
import { UpstreamError } from './errors.ts';

/**
 * Discovery, done lazily (never at import or construction, so a slow IdP cannot stop Gatehouse starting), cached for
 * a day, and retried: a failure is not cached, so the next sign-in tries again.
 */
export interface DiscoveryDeps {
  clientId: string;
  clientAuth: ClientAuth;
  fetch: typeof globalThis.fetch;
  timeoutMs: number;
  clock: Clock;
}

/** openid-client refuses plain http; only a loopback issuer (the local demo IdP, tests) may use it. */
export const isLoopbackHttp = (url: URL): boolean =>
  url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);

/** The ID token leaves openid-client's hands under this name; src/upstream/id-token.ts validates it. */
export const DIVERTED_ID_TOKEN = 'gatehouse_unverified_id_token';

/**
 * Token responses pass through here. openid-client would check the ID token's `iss` against one fixed issuer, which
 * cannot express Entra's per-tenant (and v1/v2) issuers, and it does not verify token-endpoint ID token signatures.
 * So the ID token is renamed before openid-client sees it and fully verified by verifyIdToken (signature, issuer per
 * profile, audience, nonce, expiry on the injected clock).
 */
export function idTokenDivertingFetch(fetch: typeof globalThis.fetch, tokenEndpoint: string): typeof globalThis.fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    const url = input instanceof Request ? input.url : String(input);
    if (url !== tokenEndpoint || !response.ok || !response.headers.get('content-type')?.includes('json')) return response;
    const body: unknown = await response.json();
    // The body is re-encoded: the original length and (already decoded) encoding no longer describe it.
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    headers.delete('content-encoding');
    if (typeof body === 'object' && body !== null && 'id_token' in body) {
      const { id_token: idToken, ...rest } = body as Record<string, unknown>;
      return Response.json({ ...rest, [DIVERTED_ID_TOKEN]: idToken }, { status: response.status, headers });
    }
    return Response.json(body, { status: response.status, headers });
  };
}

/**
 * The provider's metadata cannot be used as it is. Its message names what is wrong (a field, a scheme, the issuer the
 * profile expected) and is logged as it is (errors.ts failureDetail): a plain Error's was dropped, and the operator read
 * only "upstream discovery failed". Never a value the user sent.
 */
export class UpstreamDiscoveryError extends Error {
  readonly code = 'GH_UPSTREAM_DISCOVERY';
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamDiscoveryError';
  }
}

/**
 * The endpoints a sign-in sends the browser or this gateway to, as URLs it may use: https, or http on a loopback
 * issuer (the local demo IdP). A `javascript:` authorization endpoint failed every sign-in with a 500 (openid-client
 * throws building the URL), an `ftp:` token endpoint was reported to the user as a sign-in refused at the provider;
 * found here, discovery fails instead: a 503 page, `/readyz` and the log naming the field.
 */
function checkEndpoints(metadata: ServerMetadata, loopbackHttp: boolean): void {
  const allowed = loopbackHttp ? ['https:', 'http:'] : ['https:'];
  for (const field of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint', 'end_session_endpoint'] as const) {
    const value = metadata[field];
    if (value === undefined) {
      if (field === 'authorization_endpoint' || field === 'token_endpoint') throw new UpstreamDiscoveryError(`the upstream metadata has no ${field}`);
      continue;
    }
    const url = typeof value === 'string' ? URL.parse(value) : null;
    if (url === null) throw new UpstreamDiscoveryError(`the upstream metadata's ${field} is not a URL`);
    if (!allowed.includes(url.protocol)) throw new UpstreamDiscoveryError(`the upstream metadata's ${field} is not ${allowed.join(' or ')} (${url.protocol.slice(0, 20)})`);
  }
}

function configure(configuration: Configuration, deps: DiscoveryDeps, loopbackHttp: boolean): Configuration {
  const metadata = configuration.serverMetadata();
  checkEndpoints(metadata, loopbackHttp);
  // checkEndpoints refused metadata without one.
  const tokenEndpoint = metadata.token_endpoint!;
  configuration[customFetch] = idTokenDivertingFetch(deps.fetch, tokenEndpoint) as NonNullable<Configuration[typeof customFetch]>;
  configuration.timeout = Math.max(1, Math.ceil(deps.timeoutMs / 1000));
  return configuration;
}

/** @see OpenID Connect Discovery 1.0 §4 — issuer validated by openid-client against the configured issuer. */
export async function discoverOidc(issuer: string, deps: DiscoveryDeps): Promise<Configuration> {
  const url = new URL(issuer);
  const configuration = await discovery(url, deps.clientId, {}, deps.clientAuth, {
    [customFetch]: deps.fetch as NonNullable<Configuration[typeof customFetch]>,
    timeout: Math.max(1, Math.ceil(deps.timeoutMs / 1000)),
    execute: isLoopbackHttp(url) ? [allowInsecureRequests] : [],
  });
  return configure(configuration, deps, isLoopbackHttp(url));
}

const entraMetadataSchema = z
  .object({
    issuer: z.string(),
    authorization_endpoint: z.url(),
    token_endpoint: z.url(),
    jwks_uri: z.url(),
  })
  .loose();

/**
 * Entra discovery is fetched directly: its multi-tenant issuer is a template, and sovereign-cloud authorities are
 * not recognised by openid-client's built-in Entra handling. The profile validates the issuer shape instead.
 */
export async function discoverEntra(profile: EntraProfile, deps: DiscoveryDeps): Promise<Configuration> {
  const response = await deps.fetch(profile.discoveryUrl, {
    headers: { accept: 'application/json' },
    signal: AbortSignal.timeout(deps.timeoutMs),
  });
  if (!response.ok) throw new UpstreamDiscoveryError(`Entra discovery answered HTTP ${response.status}`);
  const metadata = entraMetadataSchema.parse(await response.json()) as ServerMetadata;
  profile.checkDiscoveredIssuer(metadata.issuer);
  const configuration = new Configuration(metadata, deps.clientId, {}, deps.clientAuth);
  if (isLoopbackHttp(profile.discoveryUrl)) allowInsecureRequests(configuration);
  return configure(configuration, deps, isLoopbackHttp(profile.discoveryUrl));
}

export interface DiscoveryCache {
  get(): Promise<Configuration>;
}

/** Retries with short backoff within one call; the result is kept for `maxAgeMs` (keys and endpoints rarely move). */
export function createDiscoveryCache(options: {
  load: () => Promise<Configuration>;
  clock: Clock;
  maxAgeMs?: number;
  attempts?: number;
  sleep?: (ms: number) => Promise<void>;
}): DiscoveryCache {
  const { load, clock, maxAgeMs = 24 * 3600_000, attempts = 3 } = options;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let cached: { configuration: Configuration; loadedAt: number } | undefined;
  let inFlight: Promise<Configuration> | undefined;

  async function loadWithRetry(): Promise<Configuration> {
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      if (attempt > 0) await sleep(100 * 4 ** (attempt - 1));
      try {
        const configuration = await load();
        cached = { configuration, loadedAt: clock.now() };
        return configuration;
      } catch (error) {
        lastError = error;
      }
    }
    throw new UpstreamError('temporarily_unavailable', 'The identity provider\'s discovery document could not be loaded.', {}, {
      cause: lastError,
    });
  }

  return {
    get() {
      if (cached && clock.now() - cached.loadedAt < maxAgeMs) return Promise.resolve(cached.configuration);
      inFlight ??= loadWithRetry().finally(() => {
        inFlight = undefined;
      });
      return inFlight;
    },
  };
}
