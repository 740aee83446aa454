import type { UpstreamMetrics } from './upstream-metrics.ts';
import {
  authorizationCodeGrant,
  buildAuthorizationUrl,
  buildEndSessionUrl,
  calculatePKCECodeChallenge,
  genericGrantRequest,
  refreshTokenGrant,
  type Configuration,
  type TokenEndpointResponse,
} from 'openid-client';
import type { UpstreamConfig } from '../config/schema.ts';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { createUpstreamClientAuth } from './client-auth/create-client-auth.ts';
import { createDiscoveryCache, DIVERTED_ID_TOKEN } from './discovery.ts';
import { qualifyScopes } from './entra.ts';
import { upstreamErrorLabel } from './error-label.ts';
import { UnusableTokenAnswer, UpstreamError, authorizationResponseError, brokerTokenError, failureDetail, forInteraction, upstreamTokenError } from './errors.ts';
import { atMostEvery } from '../runtime/log-throttle.ts';
import { upstreamJwks, verifyIdToken, type JwksResolver } from './id-token.ts';
import { createProfile } from './profile.ts';
import { consumeSignInState, createSignInState } from './sign-in-state.ts';
import { saveUpstreamTokens } from './token-vault.ts';
import { withUserinfoClaims } from './userinfo.ts';
import type { CompletedSignIn, Reauthentication, DownstreamTokenRequest, UpstreamClient, UpstreamIdentity, UpstreamTokens } from './types.ts';
import { JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT, ACCESS_TOKEN_TYPE } from '../protocol/oauth-urns.ts';
export { JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT, ACCESS_TOKEN_TYPE };


/** Clock difference tolerated between the IdP's `auth_time` and this gateway's clock. */
const AUTH_TIME_SKEW_SECONDS = 60;

/**
 * The fresh login a client demanded (`prompt=login`, `max_age`; OIDC Core §3.1.2.1), passed on to the IdP, must have
 * happened: when the ID token says when the user last signed in (`auth_time`), that is after this sign-in began, or
 * within `max_age`. An IdP that ignored the demand and signed the user in from its own session is refused, not
 * believed. One that says nothing is believed for `prompt=login` (the spec asks no `auth_time` there) and, from
 * Entra, for `max_age` too: its ID tokens carry no `auth_time` unless it is configured as an optional claim, and
 * refusing them would refuse every such sign-in. Any other OpenID provider must say it when `max_age` was asked
 * (`authTimeRequired`, OIDC Core §2): one that does not has not shown the login is fresh.
 */
function checkFreshLogin(
  record: { createdAt: number; reauthenticate?: Reauthentication | undefined },
  claims: Record<string, unknown>,
  now: number,
  authTimeRequired: boolean,
): void {
  const asked = record.reauthenticate;
  if (asked === undefined) return;
  if (typeof claims.auth_time !== 'number' || !Number.isFinite(claims.auth_time)) {
    if (asked.maxAge === undefined || !authTimeRequired) return;
    throw new UpstreamError('access_denied', 'The identity provider did not say when the user signed in, as the application asked (max_age).', {
      upstreamError: 'no auth_time in an ID token answering max_age',
    });
  }
  const authTime = claims.auth_time;
  const fresh =
    (asked.prompt !== 'login' || authTime >= record.createdAt / 1000 - AUTH_TIME_SKEW_SECONDS) &&
    (asked.maxAge === undefined || authTime >= now / 1000 - asked.maxAge - AUTH_TIME_SKEW_SECONDS);
  if (!fresh) {
    throw new UpstreamError('access_denied', 'The identity provider did not sign the user in again, as the application asked.', {
      upstreamError: 'auth_time older than the fresh login asked for',
    });
  }
}

/** When the IdP omits `expires_in`, assume Entra's shortest default rather than trusting a token forever. */
const DEFAULT_EXPIRES_IN_SECONDS = 3600;

/**
 * The longest an access token from the IdP is believed to live, whatever its `expires_in` says. Entra's live at most
 * 28 hours (with continuous access evaluation); an `expires_in` of years would keep a token in the broker's cache
 * (and its Redis TTL) long after it stopped working, every call forwarding a dead token.
 */
const MAX_EXPIRES_IN_SECONDS = 28 * 3600;

/**
 * When an access token stops working: `expires_in` (RFC 6749 §5.1; an hour when absent), bounded by
 * MAX_EXPIRES_IN_SECONDS, and by the token's own `exp` when it is a JWT whose payload says one (Entra's are):
 * the token's word is what its audience checks.
 */
export function tokenExpiresAt(now: number, accessToken: string, expiresIn: number | undefined): number {
  const stated = Math.min(expiresIn ?? DEFAULT_EXPIRES_IN_SECONDS, MAX_EXPIRES_IN_SECONDS);
  let expiresAt = now + stated * 1000;
  const parts = accessToken.split('.');
  if (parts.length === 3) {
    try {
      const exp: unknown = (JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown }).exp;
      if (typeof exp === 'number' && Number.isFinite(exp)) expiresAt = Math.min(expiresAt, exp * 1000);
    } catch {
      // Not a JWT after all (an opaque token with two dots): `expires_in` alone.
    }
  }
  return expiresAt;
}

/**
 * The largest downstream access token accepted. It travels in an `Authorization` header, and Node's default limit for a
 * request's whole header section is 16 KiB (as is http.sys's for Microsoft's APIs): a larger token reaches no backend
 * (431) and would be sealed into the cache for nothing. Entra's tokens are a few KB (groups past 200 become an overage
 * claim). The user's own upstream token is not held to it: it travels only in a form body, as the exchange's assertion
 * (Keycloak and Okta put every group in it), bounded by the 1 MiB cap on any provider answer (capped-fetch.ts).
 */
const MAX_ACCESS_TOKEN_BYTES = 16 * 1024;

/**
 * The shortest lifetime a downstream token is accepted with. The broker uses one that lives less than twice its
 * refresh skew for half its life (src/broker/token-freshness.ts): at 60 s, 30 s — for the request it is forwarded with
 * and the callers queued behind the exchange. `expires_in: 0` or `1` (or a JWT already past its `exp`) forwarded a dead
 * token, was never cached, and sent every queued caller to the IdP again. The user's upstream token is not held to it:
 * an IdP whose access tokens live a minute would refuse every sign-in; a short one is refreshed when it is due.
 */
const MIN_ACCESS_TOKEN_LIFETIME_SECONDS = 60;

/**
 * What the token answered is for: `upstream`, the user's own token (sign-in, refresh), presented only as an assertion
 * in a form body; `downstream`, a token forwarded in a backend request's `Authorization` header and cached.
 */
type TokenUse = 'upstream' | 'downstream';

/**
 * What makes an IdP's token answer unusable, if anything: a `token_type` other than Bearer (case-insensitive, RFC 6750;
 * a DPoP-bound token cannot be forwarded as Bearer, and RFC 8693's `N_A` is no access token), an access token empty or
 * not of VSCHARs (RFC 6749 §A.12), an `expires_in` that is not a positive integer; for a downstream token also one past
 * the header-size cap, or a lifetime (`expires_in`, bounded by the JWT's `exp`) under the minimum. Names the property,
 * never its value.
 * @see RFC 6749 §5.1
 */
function checkTokenAnswer(response: TokenEndpointResponse, now: number, use: TokenUse): { problem: string } | { expiresAt: number } {
  const problem = tokenShapeProblem(response, use);
  if (problem !== undefined) return { problem };
  // After the size check: tokenExpiresAt decodes a JWT's payload.
  const expiresAt = tokenExpiresAt(now, response.access_token, response.expires_in);
  if (use === 'downstream' && expiresAt - now < MIN_ACCESS_TOKEN_LIFETIME_SECONDS * 1000) {
    return { problem: `the token lives less than ${MIN_ACCESS_TOKEN_LIFETIME_SECONDS} s (expires_in, or the JWT's exp)` };
  }
  return { expiresAt };
}

function tokenShapeProblem(response: TokenEndpointResponse, use: TokenUse): string | undefined {
  if (response.token_type.toLowerCase() !== 'bearer') return 'token_type is not Bearer';
  if (use === 'downstream' && Buffer.byteLength(response.access_token) > MAX_ACCESS_TOKEN_BYTES) return `access_token is larger than ${MAX_ACCESS_TOKEN_BYTES} bytes`;
  if (!/^[\x20-\x7e]+$/.test(response.access_token)) return 'access_token is empty or holds characters outside RFC 6749 VSCHAR';
  const expiresIn = response.expires_in;
  if (expiresIn !== undefined && !(Number.isInteger(expiresIn) && expiresIn > 0)) return 'expires_in is not a positive integer';
  return undefined;
}

/** The context's side effects (its `publicUrl` is the issuer: the upstream redirect URI is `${publicUrl}/callback`). */
export interface UpstreamClientDeps extends Omit<GatehouseContext, 'config'> {
  config: UpstreamConfig;
  /** Process environment for federated credentials; injected by tests. */
  env?: Record<string, string | undefined>;
  /** Backoff between discovery attempts; tests pass an immediate one. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Counts failed discovery attempts and failed sign-ins (`gatehouse_upstream_errors_total`). Refresh and downstream
   * exchange failures are counted by the token broker, which makes those calls, so they are not counted twice.
   */
  metrics?: UpstreamMetrics;
}


/**
 * The upstream identity provider, through openid-client: Entra ID or any OIDC provider, authenticated without a
 * secret where the platform allows it. Validates configuration now (bad key file → fails at start); contacts the
 * IdP only when first needed.
 */
export function createUpstreamClient(deps: UpstreamClientDeps): UpstreamClient & { readonly clientAuthMethod: string } {
  const { config, publicUrl, store, keyring, clock, random, logger, fetch, metrics } = deps;
  const failed = <E>(operation: 'discovery' | 'sign-in', error: E): E => {
    metrics?.upstreamError({ operation, error: upstreamErrorLabel(error) });
    return error;
  };
  const redirectUri = `${publicUrl.replace(/\/+$/, '')}/callback`;
  const auth = createUpstreamClientAuth(config.clientAuth, {
    clientId: config.clientId,
    clock,
    random,
    fetch,
    timeoutMs: config.timeoutMs,
    ...(deps.env ? { env: deps.env } : {}),
  });
  const discoveryDeps = { clientId: config.clientId, clientAuth: auth.clientAuth, fetch, timeoutMs: config.timeoutMs, clock };
  const profile = createProfile(config, discoveryDeps);
  // Every failed attempt counts (the cache retries within one call): each is a request the IdP did not answer well.
  // Why discovery failed, for the operator (an issuer that does not match, a document that is not one); at most a
  // line a minute, since every sign-in retries it while the IdP is down.
  const logDiscoveryFailure = atMostEvery<unknown>(60_000, clock, (error, heldBack) =>
    logger.warn({ ...failureDetail(error), ...(heldBack > 0 ? { heldBack } : {}) }, 'upstream discovery failed'),
  );
  const discover = () =>
    profile.discover().catch((error: unknown) => {
      logDiscoveryFailure(error);
      throw failed('discovery', error);
    });
  const discovery = createDiscoveryCache({ load: discover, clock, ...(deps.sleep ? { sleep: deps.sleep } : {}) });
  const jwksByUri = new Map<string, JwksResolver>();
  const jwksFor = (configuration: Configuration): JwksResolver => {
    const uri = configuration.serverMetadata().jwks_uri;
    if (!uri) throw new UpstreamError('server_error', 'The identity provider publishes no jwks_uri.');
    let jwks = jwksByUri.get(uri);
    if (!jwks) jwksByUri.set(uri, (jwks = upstreamJwks(uri, fetch, config.timeoutMs)));
    return jwks;
  };

  /** An unusable token answer is the IdP's to fix: the log says what was wrong with it; the client, only that it was. */
  const logRefusedAnswer = (error: UnusableTokenAnswer): UnusableTokenAnswer => {
    logger.warn({ operation: error.operation, problem: error.problem }, 'upstream token answer refused: not a usable access token');
    return error;
  };
  /** A failed refresh or exchange as the broker takes it (brokerTokenError); an answer openid-client refused, logged. */
  const refusedAnswer = (error: unknown, operation: string): UpstreamError => {
    const mapped = brokerTokenError(error, operation);
    if (mapped instanceof UnusableTokenAnswer && mapped !== error) logRefusedAnswer(mapped);
    return mapped;
  };

  /** The answer's tokens, once checked (checkTokenAnswer) for what they are used for. */
  const tokensFrom = (response: TokenEndpointResponse, context: string, use: TokenUse, fallback: { refreshToken?: string; scope?: string } = {}): UpstreamTokens => {
    const now = clock.now();
    const checked = checkTokenAnswer(response, now, use);
    // The answer's refresh token goes with the refusal: a refresh that answered has rotated (UnusableTokenAnswer).
    if ('problem' in checked) throw logRefusedAnswer(new UnusableTokenAnswer(context, checked.problem, response.refresh_token));
    const tokens: UpstreamTokens = { accessToken: response.access_token, expiresAt: checked.expiresAt, obtainedAt: now };
    const refreshToken = response.refresh_token ?? fallback.refreshToken;
    const scope = response.scope ?? fallback.scope;
    if (refreshToken) tokens.refreshToken = refreshToken;
    if (scope) tokens.scope = scope;
    return tokens;
  };

  return {
    clientAuthMethod: auth.method,

    async beginSignIn({ interactionId, loginHint, claims, browserBinding, reauthenticate }) {
      const configuration = await discovery.get();
      const { state, stateCookie, record } = await createSignInState({ store, random, now: clock.now() }, interactionId, claims, browserBinding, reauthenticate);
      const parameters: Record<string, string> = {
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: config.scopes.join(' '),
        state,
        nonce: record.nonce,
        code_challenge: await calculatePKCECodeChallenge(record.codeVerifier),
        code_challenge_method: 'S256',
      };
      if (loginHint) parameters.login_hint = loginHint;
      // OIDC Core §5.5: Entra takes its claims challenge back verbatim here and asks the user for what it names (MFA).
      if (claims) parameters.claims = claims;
      if (reauthenticate?.prompt === 'login') parameters.prompt = 'login';
      if (reauthenticate?.maxAge !== undefined) parameters.max_age = String(reauthenticate.maxAge);
      return { authorizationUrl: buildAuthorizationUrl(configuration, parameters).href, stateCookie };
    },

    async completeSignIn({ callbackUrl, stateCookie }): Promise<CompletedSignIn> {
      const params = callbackUrl.searchParams;
      const record = await consumeSignInState(store, params.get('state'), stateCookie);
      const { interactionId } = record;
      const upstreamError = params.get('error');
      if (upstreamError) {
        // RFC 9207 §2.4 holds for error responses too: an error naming another issuer (or none, where this one says it
        // always names itself) may come from another IdP the browser was sent to (mix-up), and is not believed.
        // openid-client checks `iss` only on the code path below. Without discovery the error is taken as it is.
        const configuration = await discovery.get().catch(() => undefined);
        const mismatch = configuration === undefined ? undefined : responseIssuerProblem(configuration.serverMetadata(), params);
        if (mismatch !== undefined) {
          logger.warn({ problem: mismatch }, 'upstream error response refused: its issuer is not this identity provider');
          throw new UpstreamError('access_denied', 'The identity provider\'s response failed validation; start again.', { interactionId });
        }
        const error = authorizationResponseError(upstreamError, interactionId);
        // `access_denied` is the user saying no (or cancelling) at the IdP: an answer, not an IdP failure to alert on.
        throw upstreamError === 'access_denied' ? error : failed('sign-in', error);
      }

      const configuration = await discovery.get().catch((error: unknown) => {
        throw forInteraction(error, interactionId);
      });
      // The redirect_uri sent at the token endpoint must be byte-identical to the one sent at authorization.
      const currentUrl = new URL(redirectUri);
      currentUrl.search = callbackUrl.search;
      let response: TokenEndpointResponse;
      try {
        response = await authorizationCodeGrant(configuration, currentUrl, {
          pkceCodeVerifier: record.codeVerifier,
          expectedState: params.get('state') ?? undefined,
        });
      } catch (error) {
        const mapped = upstreamTokenError(error, 'authorization code', interactionId);
        logger.warn({ upstreamError: mapped.upstreamError, codes: mapped.upstreamErrorCodes, ...failureDetail(error) }, 'upstream code exchange failed');
        if (mapped.code === 'server_error' && mapped.upstreamError === undefined) {
          // Not an answer from the IdP but a response that failed openid-client's checks (no code, an `iss` naming
          // another issuer — RFC 9207 mix-up defence): bad input, not our failure (nor the IdP's: not counted).
          throw new UpstreamError('access_denied', 'The identity provider\'s response failed validation; start again.', { interactionId });
        }
        failed('sign-in', mapped);
        if (mapped.upstreamError === 'invalid_grant') {
          throw new UpstreamError('invalid_grant', 'The identity provider did not accept the sign-in; start again.', {
            upstreamError: 'invalid_grant',
            upstreamErrorCodes: mapped.upstreamErrorCodes,
            interactionId,
          });
        }
        throw mapped;
      }
      const idToken = (response as Record<string, unknown>)[DIVERTED_ID_TOKEN];
      if (typeof idToken !== 'string') {
        // The IdP's answer is what is wrong (no `openid` in what it granted?): the log says so, as for a failed check.
        logger.warn('upstream sign-in refused: the token response has no ID token');
        throw new UpstreamError('access_denied', 'The identity provider returned no ID token.', { interactionId });
      }
      let identity: UpstreamIdentity;
      try {
        const claims = await verifyIdToken({
          idToken,
          jwks: jwksFor(configuration),
          clientId: config.clientId,
          expectedNonce: record.nonce,
          expectedIssuer: (unverified) => profile.expectedIssuer(unverified, configuration),
          clock,
        });
        checkFreshLogin(record, claims, clock.now(), profile.authTimeRequiredWithMaxAge);
        const mapped = await withUserinfoClaims({ configuration, idTokenClaims: claims, accessToken: response.access_token, mapping: profile.claims });
        identity = profile.identityFrom(mapped);
        // An address the provider does not vouch for is not used (identity-claims.ts): say so, or an admin matched by
        // address finds the console closed with no clue why.
        if (typeof mapped.email === 'string' && identity.email !== mapped.email) {
          logger.info({ subject: identity.subject }, 'upstream email not used: the identity provider does not vouch for it (email_verified, or xms_edov for Entra)');
        }
      } catch (error) {
        const mapped = failed('sign-in', forInteraction(error, interactionId));
        logger.warn({ reason: mapped.message, ...failureDetail(error) }, 'upstream identity rejected (ID token or userinfo)');
        throw mapped;
      }
      let tokens: UpstreamTokens;
      try {
        tokens = tokensFrom(response, 'authorization code', 'upstream');
      } catch (error) {
        throw failed('sign-in', forInteraction(error, interactionId));
      }
      tokens.idToken = idToken;
      const refreshLifetime = Number((response as Record<string, unknown>).refresh_token_expires_in);
      await saveUpstreamTokens(
        { store, keyring, clock },
        identity.subject,
        tokens,
        Number.isFinite(refreshLifetime) && refreshLifetime > 0 ? { refreshTokenLifetimeSeconds: refreshLifetime } : {},
      );
      logger.info({ subject: identity.subject, tenantId: identity.tenantId }, 'upstream sign-in completed');
      return {
        interactionId,
        identity,
        tokens,
        ...(record.claims === undefined ? {} : { requestedClaims: record.claims }),
        ...(record.reauthenticate === undefined ? {} : { reauthenticate: record.reauthenticate }),
      };
    },

    async refresh(refreshToken) {
      const configuration = await discovery.get();
      try {
        const response = await refreshTokenGrant(configuration, refreshToken, profile.refreshParameters);
        return tokensFrom(response, 'refresh', 'upstream', { refreshToken });
      } catch (error) {
        throw refusedAnswer(error, 'refresh');
      }
    },

    async exchangeForDownstream(request: DownstreamTokenRequest) {
      const configuration = await discovery.get();
      // On-behalf-of carries the audience inside each scope (`{resource}/{scope}`), whichever IdP answers it.
      const scopes = request.grant === 'on-behalf-of' ? qualifyScopes(request.audience, request.scopes) : request.scopes;
      try {
        const response =
          request.grant === 'on-behalf-of'
            ? // Entra on-behalf-of: the audience is inside the scopes; Entra rejects `resource` on v2 endpoints.
              await genericGrantRequest(configuration, JWT_BEARER_GRANT, {
                assertion: request.subjectToken,
                requested_token_use: 'on_behalf_of',
                scope: scopes.join(' '),
              })
            : // @see RFC 8693 §2.1
              await genericGrantRequest(configuration, TOKEN_EXCHANGE_GRANT, {
                subject_token: request.subjectToken,
                subject_token_type: ACCESS_TOKEN_TYPE,
                requested_token_type: ACCESS_TOKEN_TYPE,
                audience: request.audience,
                scope: scopes.join(' '),
              });
        return tokensFrom(response, request.grant, 'downstream', { scope: scopes.join(' ') });
      } catch (error) {
        throw refusedAnswer(error, request.grant);
      }
    },

    async endSessionUrl({ idTokenHint, postLogoutRedirectUri }) {
      const configuration = await discovery.get();
      if (!configuration.serverMetadata().end_session_endpoint) return undefined;
      // @see OpenID Connect RP-Initiated Logout 1.0 §2: the hint names the session; client_id lets the IdP check the
      // post-logout URI against this client's registration even without one.
      const parameters: Record<string, string> = { client_id: config.clientId, post_logout_redirect_uri: postLogoutRedirectUri };
      if (idTokenHint) parameters.id_token_hint = idTokenHint;
      return buildEndSessionUrl(configuration, parameters).href;
    },

    async checkHealth() {
      await discovery.get();
    },
  };
}

/** Why an authorization response's `iss` (RFC 9207) is not the IdP's own, if it is not. */
function responseIssuerProblem(metadata: { issuer: string; authorization_response_iss_parameter_supported?: boolean }, params: URLSearchParams): string | undefined {
  const given = params.getAll('iss');
  if (given.length > 1) return 'iss given more than once';
  if (given.length === 0) return metadata.authorization_response_iss_parameter_supported === true ? 'no iss, though the IdP says it always sends one' : undefined;
  return given[0] === metadata.issuer ? undefined : 'iss names another issuer';
}
