import { createLocalJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import type { DownstreamConfig, GatehouseConfig } from '../config/schema.ts';
import type { Keyring } from '../keys/keyring.ts';
import type { Clock } from '../runtime/clock.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { TokenEndpointError } from '../errors/token-endpoint-error.ts';
import type { TokenBroker } from './types.ts';
import type { RevokedGrantsCache } from '../grants/revoked-grants.ts';
import type { AuditRecord } from '../records/audit.ts';
import { APP_ONLY_CLAIM } from '../protocol/app-only.ts';
import { TOKEN_EXCHANGE_GRANT, JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE } from '../protocol/oauth-urns.ts';
export { TOKEN_EXCHANGE_GRANT, JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE };

/**
 * RFC 8693 token exchange at the gateway's `/token`, for pre-registered backend clients: the backend presents the
 * identity assertion the gateway forwarded to it (the subject token) and names a downstream API (`resource` and/or
 * `scope`); the gateway answers with a downstream token for that user from the broker. The backend never holds the
 * user's upstream token, and can only reach the downstream APIs its client entry lists in `allowedDownstream`.
 * @see RFC 8693 §2.1 (request), §2.2 (response), §2.2.2 (errors)
 */
const IDENTITY_ASSERTION_TYP = 'gatehouse-id+jwt';

export interface TokenExchangeGrantDeps {
  config: Pick<GatehouseConfig, 'authorization' | 'broker' | 'routes'>;
  /** The gateway's issuer (no trailing slash). */
  publicUrl: string;
  keyring: Keyring;
  clock: Clock;
  broker: TokenBroker;
  /**
   * The replica's revoked grants (src/grants/revoked-grants.ts). An identity assertion lives for minutes after the
   * request it was forwarded with; once its grant has ended, the backend holding it must not turn it into the
   * user's downstream tokens, as the client's own access token no longer passes the gateway.
   */
  revokedGrants: Pick<RevokedGrantsCache, 'isRevoked' | 'isCurrent'>;
  /** The gateway's audit log (src/proxy/audit.ts), which every exchange is recorded in. */
  recordAudit?: (entry: AuditRecord) => void;
  /**
   * Checks the request's DPoP proof and uses it up, as every grant at /token must (RFC 9449 §5): a bad proof is
   * refused (`invalid_dpop_proof`) whatever the grant. The downstream token is the IdP's, so it is never bound to the
   * proof's key: the answer's `token_type: Bearer` says so (§5). The authorization server's own check
   * (src/authorization/grants/dpop-binding.ts), passed in so the broker does not reach into the provider.
   */
  checkDpopProof: (ctx: GrantContext) => Promise<unknown>;
}

type ExchangeAudit = Pick<AuditRecord, 'route' | 'method'> & Partial<Pick<AuditRecord, 'user' | 'client'>>;

/** The slice of oidc-provider's Koa context a grant handler touches (oidc-provider ships no types). */
export interface GrantContext {
  oidc: { params?: Record<string, unknown>; client?: { clientId: string } };
  body: unknown;
  set(field: string, value: string): void;
}

/** What a middleware of the provider sees of a token request once it has been answered. */
interface AnsweredRequest {
  oidc?: { route?: string; body?: Record<string, unknown>; client?: { clientId: string } };
  status: number;
  body: unknown;
}

export interface GrantRegistry {
  registerGrantType(name: string, handler: (ctx: GrantContext) => Promise<void>, params?: string[] | Set<string>): void;
  use(middleware: (ctx: AnsweredRequest, next: () => Promise<void>) => Promise<void>): void;
}

/** Status and code of a refusal: ours (TokenEndpointError) or oidc-provider's (its errors carry both); else a 500. */
function refusalOf(error: unknown): { status: number; reason: string } {
  if (error instanceof TokenEndpointError) return { status: error.status, reason: error.error };
  const { status, error: code } = (typeof error === 'object' && error !== null ? error : {}) as { status?: unknown; error?: unknown };
  if (typeof status === 'number' && status >= 400 && status < 600 && typeof code === 'string') return { status, reason: code };
  return { status: 500, reason: 'server_error' };
}

/**
 * The broker's refusal as the token endpoint answers it (RFC 6749 §5.2, RFC 8693 §2.2.2). The broker speaks to MCP
 * clients, where 401 `interaction_required` asks the user to sign in again; at /token a 401 means the *client's*
 * credentials failed (oidc-provider adds a Basic challenge), so a backend would look for a fault in its own secret.
 * A user who must sign in again is `400 interaction_required`, as Entra's own token endpoint answers an on-behalf-of
 * exchange that needs the user; any other refusal for the user is a subject token unacceptable by policy, which
 * RFC 8693 §2.2.2 answers `invalid_request` (as an invalid subject token). Outages stay 503, the rest keep their code.
 */
function toEndpointError(error: ProtocolError): TokenEndpointError {
  if (error.status === 401 || error.status === 403) {
    const code = error.code === 'interaction_required' ? 'interaction_required' : 'invalid_request';
    return new TokenEndpointError(code, error.description, { status: 400, detail: `broker: ${error.code}` });
  }
  return new TokenEndpointError(error.code, error.description, { status: error.status, detail: `broker: ${error.code}` });
}

function single(params: Record<string, unknown>, name: string): string | undefined {
  const value = params[name];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new TokenEndpointError('invalid_request', `\`${name}\` must be given once.`);
  return value;
}

export function registerTokenExchangeGrant(provider: GrantRegistry, deps: TokenExchangeGrantDeps): void {
  const { config, publicUrl, keyring, clock, broker, revokedGrants, recordAudit, checkDpopProof } = deps;
  // Resource URL of each route → the downstream APIs its backend may obtain (`routes[].downstream`).
  const routeDownstream = new Map(config.routes.map((route) => [publicUrl + route.path, new Set(route.downstream)]));
  const clients = new Map(config.authorization.clients.map((client) => [client.clientId, client]));

  /**
   * @see RFC 8693 §2.1 — `subject_token` must be an identity assertion this gateway forwarded to one of its routes;
   * never an access token or an ID token. Returns the user and the route it was forwarded to.
   */
  async function verifySubjectToken(token: string): Promise<{ subject: string; route: string }> {
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet(keyring.publicJwks()), {
        issuer: publicUrl,
        typ: IDENTITY_ASSERTION_TYP,
        currentDate: new Date(clock.now()),
        requiredClaims: ['sub', 'exp', 'aud', 'gid'],
      });
      const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      const route = audiences.find((aud): aud is string => aud !== undefined && routeDownstream.has(aud));
      if (!route) throw new TokenEndpointError('invalid_request', 'The subject token was not issued for a route of this gateway.');
      // The broker acts for a signed-in user; an assertion forwarded for an app-only caller names a client, not one.
      if (payload[APP_ONLY_CLAIM] === true) throw new TokenEndpointError('invalid_request', 'The subject token stands for an app-only caller; there is no user to act for.');
      if (typeof payload.gid !== 'string' || revokedGrants.isRevoked(payload.gid)) {
        throw new TokenEndpointError('invalid_request', 'The grant the subject token was issued under has ended.');
      }
      // As the gateway's bearer check: a list this replica could not re-read for too long may miss that end.
      if (!revokedGrants.isCurrent()) {
        throw new TokenEndpointError('temporarily_unavailable', 'Revocations cannot be checked right now; retry later.', { status: 503 });
      }
      return { subject: payload.sub as string, route };
    } catch (error) {
      if (error instanceof TokenEndpointError) throw error;
      const expired = error instanceof joseErrors.JWTExpired;
      throw new TokenEndpointError('invalid_request', expired ? 'The subject token has expired.' : 'The subject token is not a valid identity assertion of this gateway.');
    }
  }

  /**
   * @see RFC 8693 §2.2.2 — a target is `invalid_target` unless both the client (`allowedDownstream`) and the route the
   * assertion was forwarded to (`routes[].downstream`) allow it: an assertion a backend received for one route cannot
   * be turned into tokens another route's backend may have.
   */
  function resolveDownstream(clientId: string, route: string, target: { resource?: string; audience?: string }, scopes: string[]): DownstreamConfig {
    const byClient = new Set(clients.get(clientId)?.allowedDownstream ?? []);
    const byRoute = routeDownstream.get(route) ?? new Set<string>();
    const allowed = new Set([...byClient].filter((name) => byRoute.has(name)));
    const { resource, audience } = target;
    // `resource` is the API's URI; `audience` its URI or its logical name (the downstream's `name`, §2.1).
    const named = (entry: DownstreamConfig) =>
      resource !== undefined ? entry.audience === resource : audience === undefined || entry.audience === audience || entry.name === audience;
    const matches = config.broker.downstream.filter(
      (entry) => named(entry) && scopes.every((scope) => entry.scopes.includes(scope)) && (resource !== undefined || audience !== undefined || scopes.length > 0),
    );
    // Of several the request fits, the one granting the least (fewest scopes): the first in configuration order handed
    // a backend asking for User.Read the entry with Mail.ReadWrite too.
    const permitted = matches.filter((entry) => allowed.has(entry.name)).sort((a, b) => a.scopes.length - b.scopes.length)[0];
    if (!permitted) {
      throw new TokenEndpointError('invalid_target', 'The requested resource or scope is not a downstream API this client may obtain.');
    }
    return permitted;
  }

  /**
   * Every exchange is an audit record, as every MCP request is: which backend obtained which downstream API's token
   * for whom, or why it was refused. Route: the one the subject token was forwarded on, `/token` before that is known.
   * Method `token-exchange <downstream>`. Never a token.
   */
  /** The requests whose exchange the handler recorded; the middleware below records the ones refused before it. */
  const recorded = new WeakSet<object>();

  async function handleTokenExchange(ctx: GrantContext): Promise<void> {
    recorded.add(ctx);
    const started = clock.now();
    const entry: ExchangeAudit = { route: '/token', method: 'token-exchange' };
    const clientId = ctx.oidc.client?.clientId;
    if (clientId !== undefined) entry.client = clientId;
    try {
      await exchange(ctx, entry);
      recordAudit?.({ ...entry, time: started, outcome: 'allowed', status: 200, durationMs: clock.now() - started, bytesIn: 0, bytesOut: 0 });
    } catch (error) {
      const { status, reason } = refusalOf(error);
      recordAudit?.({ ...entry, time: started, outcome: status >= 500 ? 'error' : 'denied', status, reason, durationMs: clock.now() - started, bytesIn: 0, bytesOut: 0 });
      throw error;
    }
  }

  async function exchange(ctx: GrantContext, entry: ExchangeAudit): Promise<void> {
    const params = ctx.oidc.params ?? {};
    const clientId = ctx.oidc.client?.clientId;
    if (!clientId || !clients.has(clientId)) {
      // Token exchange is for pre-registered backends only, never for dynamically registered MCP clients.
      throw new TokenEndpointError('unauthorized_client', 'Only pre-registered backend clients may use token exchange.');
    }
    // The proof first, as every grant checks it: a bad one is refused before the subject token is looked at.
    await checkDpopProof(ctx);
    const subjectToken = single(params, 'subject_token');
    const subjectTokenType = single(params, 'subject_token_type');
    if (!subjectToken || !subjectTokenType) {
      throw new TokenEndpointError('invalid_request', '`subject_token` and `subject_token_type` are required.');
    }
    if (subjectTokenType !== JWT_TOKEN_TYPE) {
      throw new TokenEndpointError('invalid_request', `\`subject_token_type\` must be ${JWT_TOKEN_TYPE}.`);
    }
    const requestedType = single(params, 'requested_token_type');
    if (requestedType !== undefined && requestedType !== ACCESS_TOKEN_TYPE) {
      throw new TokenEndpointError('invalid_request', `Only ${ACCESS_TOKEN_TYPE} can be issued.`);
    }
    if (params.actor_token !== undefined) {
      throw new TokenEndpointError('invalid_request', 'Delegation (`actor_token`) is not supported.');
    }
    // §2.1: `actor_token_type` is required with `actor_token` and must not be sent without it.
    if (params.actor_token_type !== undefined) {
      throw new TokenEndpointError('invalid_request', '`actor_token_type` was given without `actor_token`.');
    }
    const resource = single(params, 'resource');
    const audience = single(params, 'audience');
    const scopes = (single(params, 'scope') ?? '').split(' ').filter(Boolean);

    const { subject, route } = await verifySubjectToken(subjectToken);
    entry.user = subject;
    entry.route = route.slice(publicUrl.length);
    const downstream = resolveDownstream(clientId, route, { ...(resource === undefined ? {} : { resource }), ...(audience === undefined ? {} : { audience }) }, scopes);
    entry.method = `token-exchange ${downstream.name}`;
    // Both name the target (§2.1): `audience` as its URI or its logical name (the downstream's `name`). One naming
    // another target than `resource` is no request the backend could mean; it was ignored.
    if (resource !== undefined && audience !== undefined && audience !== downstream.audience && audience !== downstream.name) {
      throw new TokenEndpointError('invalid_request', '`resource` and `audience` name different targets.');
    }
    let token;
    try {
      token = await broker.getDownstreamToken({ user: { subject }, downstream: downstream.name });
    } catch (error) {
      if (error instanceof ProtocolError) {
        // When to come back, as the broker remembered the failure for (five seconds, not the provider's default one).
        const retryAfter = error.headers['Retry-After'];
        if (retryAfter !== undefined) ctx.set('Retry-After', String(retryAfter));
        throw toEndpointError(error);
      }
      throw error;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    ctx.body = {
      access_token: token.accessToken,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: Math.max(0, Math.floor((token.expiresAt - clock.now()) / 1000)),
      scope: token.scopes.join(' '),
    };
  }

  // Refusals the provider makes before the handler runs (no or failed client authentication, a client not
  // registered for the grant, a parameter given twice) are exchanges refused too: recorded with what is known.
  provider.use(async (ctx, next) => {
    await next();
    if (recordAudit === undefined || recorded.has(ctx) || ctx.oidc?.route !== 'token' || ctx.status < 400) return;
    const grantType = ctx.oidc.body?.grant_type;
    if (grantType !== TOKEN_EXCHANGE_GRANT && !(Array.isArray(grantType) && grantType.includes(TOKEN_EXCHANGE_GRANT))) return;
    const code = (ctx.body as { error?: unknown } | undefined)?.error;
    // The provider found the client the request named even when its authentication failed: only a client that
    // proved who it is is recorded as one.
    const clientId = code === 'invalid_client' ? undefined : ctx.oidc.client?.clientId;
    recordAudit({
      time: clock.now(),
      route: '/token',
      method: 'token-exchange',
      ...(clientId === undefined ? {} : { client: clientId }),
      outcome: ctx.status >= 500 ? 'error' : 'denied',
      status: ctx.status,
      reason: typeof code === 'string' ? code : 'invalid_request',
      durationMs: 0,
      bytesIn: 0,
      bytesOut: 0,
    });
  });

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, handleTokenExchange, [
    'subject_token',
    'subject_token_type',
    'requested_token_type',
    'actor_token',
    'actor_token_type',
    'resource',
    'audience',
    'scope',
  ]);
}
