import { createStreamBudget, type StreamBudget } from './stream-budget.ts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { tracingOff, type Tracing } from '../observability/tracing.ts';
import type { ProxyMetrics } from './proxy-metrics.ts';
import type { TokenBroker } from '../broker/types.ts';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { createAccountCache, type AccountCache, type AccountRecord } from './account-cache.ts';
import { createAuditLog, type AuditLog, type AuditLogOptions, type AuditRecord } from './audit.ts';
import { backendRequestHeaders, type ForwardedFor } from './forward-headers.ts';
import { createIdentityAssertionSigner } from './identity-assertion.ts';
import { createIdentityForwarder, type IdentityForwarder } from './identity-forwarding.ts';
import { createBackendStepUp, type BackendStepUp } from './backend-step-up.ts';
import { createOriginPolicy } from './origin-check.ts';
import { createRateLimiter, type RateLimiter } from './rate-limit.ts';
import type { RevokedGrantsCache } from '../grants/revoked-grants.ts';
import { createEndGrant, type EndGrant } from '../grants/end-grant.ts';
import type { RouteState } from './route-state.ts';
import { createSessionBindings, type SessionBindings } from './session-bindings.ts';
import type { Caller } from './tool-policy.ts';
import { createToolPins, type ToolPins } from './tool-pins.ts';
import { createAccessTokenVerifier, type VerifiedAccess, type VerifyAccessToken } from './verify-access-token.ts';
import { createDpopNonces } from '../keys/dpop-nonces.ts';
import { createDpopProofVerifier } from './dpop-proof.ts';
import { createTaskBindings, type TaskBindings } from './task-bindings.ts';
import { createOpenStreams, type OpenStreams } from './open-streams.ts';
import { atMostEvery } from '../runtime/log-throttle.ts';

/**
 * The gateway's shared machinery, built once per process from the context: the handlers of every route and
 * transport use the same verifier, caches, session bindings, rate limiter and audit log.
 */
export interface GatewayRuntime {
  ctx: GatehouseContext;
  verifyAccessToken: VerifyAccessToken;
  /** The verifier and the assertion signer drop what they keep per key when the keyring changes; this stops that. */
  stopFollowingKeys(): void;
  accounts: AccountCache;
  forwarder: IdentityForwarder;
  /** A backend's `insufficient_claims` 401, turned into the gateway's own step-up challenge (backend-step-up.ts). */
  backendStepUp: BackendStepUp;
  sessions: SessionBindings;
  /** Tasks bound to the caller that created them (task-bindings.ts). */
  tasks: TaskBindings;
  /** Open streams by grant and by session, cut when either ends or their token expires (open-streams.ts). */
  openStreams: OpenStreams;
  /** Open streams per user and route (stream-budget.ts). */
  streamBudget: StreamBudget;
  rateLimiter: RateLimiter;
  toolPins: ToolPins;
  audit: AuditLog;
  metrics: ProxyMetrics | undefined;
  /** Off (`tracingOff`) unless the `OTEL_*` environment configures an exporter (src/observability/load-tracing.ts). */
  tracing: Tracing;
  checkOrigin: (origin: string | undefined) => void;
  isAllowedOrigin: (origin: string) => boolean;
  /** The public URL's host and scheme, told to backends as the client's (parsed once; forwardedFor). */
  publicOrigin: PublicOrigin;
}

export interface PublicOrigin {
  host: string;
  protocol: string;
}

export function publicOriginOf(publicUrl: string): PublicOrigin {
  const parsed = new URL(publicUrl);
  return { host: parsed.host, protocol: parsed.protocol.slice(0, -1) };
}

/** What the gateway is built from besides the context: the parts of the app it calls into. */
export interface GatewayDeps {
  broker?: TokenBroker;
  revokedGrants: RevokedGrantsCache;
  /** The app's grant-ending function (an upstream `invalid_grant` ends the grant that met it). */
  endGrant?: EndGrant;
  /** Overrides `audit.output` as the JSON-lines sink (embedders, tests). */
  auditSink?: AuditLogOptions['sink'];
  /** The audit log to write to, when the app shares one with other parts (the token exchange at /token); else one of its own. */
  audit?: AuditLog;
  /** Open SSE streams and 429s are counted here (request counts come from the server-wide request hook). */
  metrics?: ProxyMetrics;
  /** Spans for every gateway request (src/observability/tracing.ts); off when absent. */
  tracing?: Tracing;
  /**
   * Registers a listener told after a configuration reload changed the routes in place (src/app/reload-config.ts);
   * returns its removal.
   */
  onReloaded?: (listener: () => void) => () => void;
}

export function createGatewayRuntime(ctx: GatehouseContext, deps: GatewayDeps): GatewayRuntime {
  const { store, clock, keyring, random, logger, publicUrl, config } = ctx;
  const origins = createOriginPolicy(publicUrl, config.server.allowedOrigins);
  const endGrant = deps.endGrant ?? createEndGrant({ store, clock, accessTokenTtlSeconds: config.authorization.accessTokenTtlSeconds, grantLifetimeSeconds: config.authorization.refreshTokenAbsoluteSeconds });
  const verifyAccessToken = createAccessTokenVerifier({
    keyring,
    issuer: publicUrl,
    clock,
    revokedGrants: deps.revokedGrants,
    verifyDpopProof: createDpopProofVerifier({ store, clock, nonces: createDpopNonces({ keyring, clock }) }),
  });
  const signer = createIdentityAssertionSigner({ keyring, issuer: publicUrl, clock, random });
  return {
    ctx,
    verifyAccessToken,
    publicOrigin: publicOriginOf(publicUrl),
    stopFollowingKeys: () => {
      verifyAccessToken.close();
      signer.close();
    },
    accounts: createAccountCache({ store, clock }),
    forwarder: createIdentityForwarder({ signer, broker: deps.broker, endGrant }),
    backendStepUp: createBackendStepUp({ store, clock, endGrant }),
    sessions: createSessionBindings(store, undefined, undefined, clock),
    tasks: createTaskBindings(store, () => clock.now(), keyring),
    openStreams: createOpenStreams({
      clock,
      cutNow: ({ grantId, kid, route, scopes }) => {
        if (deps.revokedGrants.isRevoked(grantId)) return 'grant ended';
        if (!deps.revokedGrants.isCurrent()) return 'revocations cannot be checked';
        if (kid !== undefined && !keyring.signingKeys().some((key) => key.kid === kid)) return 'signing key removed';
        // A reload may have raised the route's required scopes since this stream's request was checked.
        const required = config.routes.find((entry) => entry.path === route)?.requiredScopes ?? [];
        if (required.some((scope) => !scopes.includes(scope))) return 'scopes no longer enough';
        return undefined;
      },
    }),
    streamBudget: createStreamBudget(),
    rateLimiter: createRateLimiter({
      store,
      clock,
      // While the store is down each counter's first claim of a window fails: one line a minute, the reason without a stack.
      onError: atMostEvery<unknown>(60_000, clock, (error, heldBack) =>
        logger.warn({ reason: error instanceof Error ? error.message : String(error), ...(heldBack > 0 ? { failuresSinceLastLine: heldBack } : {}) }, 'rate-limit counters could not be shared'),
      ),
      onRejected: (limit) => deps.metrics?.rateLimitRejected(limit),
    }),
    toolPins: createToolPins({ store, clock, logger }),
    tracing: deps.tracing ?? tracingOff,
    audit: deps.audit ?? createAuditLog({
      store,
      random,
      logger,
      output: config.audit.output,
      retentionDays: config.audit.retentionDays,
      sink: deps.auditSink,
      onDropped: (count) => deps.metrics?.auditRecordsDropped(count),
    }),
    metrics: deps.metrics,
    checkOrigin: origins.check,
    isAllowedOrigin: origins.isAllowed,
  };
}

/** The authorized caller of one request. */
export interface AuthorizedCall {
  claims: VerifiedAccess;
  account: AccountRecord | undefined;
  caller: Caller;
}

/** Origin, bearer token, rate limit: the checks every protected request passes before anything else happens. */
export async function authorizeRequest(
  runtime: GatewayRuntime,
  state: RouteState,
  request: FastifyRequest,
  audit: Partial<AuditRecord>,
  options: { rateLimit: boolean },
): Promise<AuthorizedCall> {
  runtime.checkOrigin(request.headers.origin);
  const query = request.url.indexOf('?');
  const rawQuery = query === -1 ? '' : request.url.slice(query + 1);
  // RFC 9449 §4.3: the proof's `htu` is checked against the URL on the gateway's public URL, never one built from
  // the Host header a client controls.
  const url = runtime.ctx.publicUrl + (query === -1 ? request.url : request.url.slice(0, query));
  // The audit record names the token's user and client once its signature verified, a refusal after that included.
  const claims = await runtime.verifyAccessToken(
    { authorization: request.headers.authorization, rawQuery, dpop: request.headers.dpop, method: request.method, url, caller: audit },
    state.target,
  );
  if (options.rateLimit) {
    // A promise only when this replica holds no lease of the budget (rate-limit.ts): most requests do not wait.
    const admitting = runtime.rateLimiter.consume(state.route, claims.sub, claims.clientId);
    if (admitting !== undefined) await admitting;
  }
  // An app-only caller's `sub` is a client id: no account, so no groups, whatever record shares that name.
  const account = claims.appOnly === true ? undefined : await runtime.accounts.get(claims.sub);
  const caller = {
    scopes: claims.scopes,
    groups: account?.groups ?? [],
    subject: claims.sub,
    email: account?.email,
    tenant: account?.tenantId,
    clientId: claims.clientId,
    appOnly: claims.appOnly,
  };
  return { claims, account, caller };
}

/** Headers for the backend request: the client's minus hop-by-hop, credentials and address claims, plus identity and forwarding. */
export async function backendHeaders(runtime: GatewayRuntime, state: RouteState, request: FastifyRequest, call: AuthorizedCall) {
  const authorization = await runtime.forwarder.authorizationFor({
    route: state.route,
    resource: state.resource,
    challenge: state.target,
    claims: call.claims,
    account: call.account,
  });
  return backendRequestHeaders(request.headers, forwardedFor(request, runtime.publicOrigin), authorization);
}

/**
 * What the forwarding headers tell the backend about the client, from what Fastify derived of the connection. The
 * host and scheme are the public URL's, the ones the client's token and proofs were checked against: the request's
 * `Host` is whatever the client wrote (`Host: evil.example", for=1.2.3.4` reached the backend as its forwarded host,
 * for its redirects, links and caches to trust), and a trusted proxy's `X-Forwarded-Host` names no other origin
 * the gateway serves.
 */
export function forwardedFor(request: Pick<FastifyRequest, 'ips' | 'ip'>, publicOrigin: PublicOrigin): ForwardedFor {
  // `ips` is a getter that walks the X-Forwarded-For chain when a proxy is trusted: read once.
  const ips = request.ips as Array<string | undefined> | undefined;
  const addresses = ips && ips.length > 1 ? knownAddresses(ips.reverse()) : request.ip === undefined ? [] : [request.ip];
  return { addresses, protocol: publicOrigin.protocol, host: publicOrigin.host };
}

/**
 * The chain without the addresses Node no longer knows: a client that closed its side while its request was read
 * has no socket address left, and `request.ip` (and the chain's last hop) is then undefined, not a string.
 */
function knownAddresses(chain: Array<string | undefined>): string[] {
  return chain.filter((address): address is string => address !== undefined);
}

/** Aborts the backend exchange when the client goes away (a closed SSE tab must not leave a backend stream open). */
export function abortOnClientClose(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  // `on`, not `once`: a response closes once, and `once` would add a wrapper per request.
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}
