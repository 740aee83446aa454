import { causeChain } from '../errors/cause-chain.ts';
import { ResponseTooLargeError } from '../runtime/capped-fetch.ts';
import { ProtocolError, type ErrorCode, type ProtocolErrorOptions } from '../errors/protocol-error.ts';
import { withoutJwts } from '../server/logger.ts';

/**
 * Upstream failures as ProtocolErrors the rest of Gatehouse can act on. The upstream's own error code, Entra's
 * `AADSTS` numbers and any claims challenge are kept in fields (never shown to the client verbatim, never a token),
 * so the broker can tell "sign in again" from "the IdP is down".
 */
export interface UpstreamErrorDetails {
  /** The OAuth `error` the IdP answered with, e.g. `invalid_grant`. */
  upstreamError?: string;
  /** Entra `AADSTS…` codes from `error_codes` or the description. */
  upstreamErrorCodes: string[];
  /** A claims challenge (Conditional Access step-up) to pass back into the next authorization request. */
  claims?: string;
  /** The Gatehouse interaction a failed sign-in belonged to, so the AS can end it with the error. */
  interactionId?: string;
}

export class UpstreamError extends ProtocolError {
  readonly upstreamError: string | undefined;
  readonly upstreamErrorCodes: string[];
  readonly claims: string | undefined;
  readonly interactionId: string | undefined;

  constructor(code: ErrorCode, description: string, details: Partial<UpstreamErrorDetails> = {}, options: ProtocolErrorOptions = {}) {
    // `server_error` here is always the identity provider's answer refused or failed (a registration it does not
    // accept, a response that is not OAuth): 502, a bad gateway, not the gateway's own 500 (docs/entra.md).
    super(code, description, code === 'server_error' && options.status === undefined ? { ...options, status: 502 } : options);
    this.name = 'UpstreamError';
    this.upstreamError = details.upstreamError;
    this.upstreamErrorCodes = details.upstreamErrorCodes ?? [];
    this.claims = details.claims;
    this.interactionId = details.interactionId;
  }
}

/** The same error, tagged with the sign-in it ended (so the authorization server can answer that interaction). */
export function forInteraction(error: unknown, interactionId: string): UpstreamError {
  const upstream = error instanceof UpstreamError ? error : upstreamTokenError(error, 'sign-in');
  return new UpstreamError(
    upstream.code,
    upstream.message,
    { upstreamError: upstream.upstreamError, upstreamErrorCodes: upstream.upstreamErrorCodes, claims: upstream.claims, interactionId },
    { status: upstream.status, headers: upstream.headers, cause: upstream.cause },
  );
}

/**
 * Errors after which only a new interactive sign-in helps (OIDC Core §3.1.2.6, RFC 6749 §5.2), plus CAE's
 * `insufficient_claims` (the claims challenge's own code).
 */
const reauthorizationErrors = new Set(['interaction_required', 'consent_required', 'login_required', 'invalid_grant', 'insufficient_claims']);
/** Entra: consent missing (65001) or revoked (65004), MFA (50076/50079), CA (53003), grant revoked or expired. */
const reauthorizationAadsts = new Set(['65001', '65004', '50076', '50079', '50158', '53003', '50173', '700082', '70043', '70008']);

interface OAuthErrorBody {
  error?: unknown;
  error_description?: unknown;
  error_codes?: unknown;
  claims?: unknown;
}

function aadstsCodes(body: OAuthErrorBody): string[] {
  const codes = new Set<string>();
  if (Array.isArray(body.error_codes)) {
    for (const code of body.error_codes) if (typeof code === 'number' || typeof code === 'string') codes.add(String(code));
  }
  if (typeof body.error_description === 'string') {
    for (const match of body.error_description.matchAll(/AADSTS(\d+)/g)) if (match[1]) codes.add(match[1]);
  }
  return [...codes].map((code) => `AADSTS${code}`);
}

/** Reads the error body openid-client attaches (`ResponseBodyError.cause`) or a plain OAuth error object. */
function oauthErrorBody(error: unknown): OAuthErrorBody | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const record = error as { error?: unknown; cause?: unknown; code?: unknown };
  if (record.code === 'OAUTH_RESPONSE_BODY_ERROR' && typeof record.cause === 'object' && record.cause !== null) {
    return record.cause as OAuthErrorBody;
  }
  if (typeof record.error === 'string') return record as OAuthErrorBody;
  return undefined;
}

/** No answer at all: a timeout, an abort, a refused or reset connection, DNS (anywhere in the cause chain). */
export const isNetworkFailure = (error: unknown): boolean =>
  causeChain(error).some((layer) => {
    const { name, code } = layer;
    if (name === 'TimeoutError' || name === 'AbortError' || code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT') return true;
    if (typeof code === 'string' && /^(ECONN|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|UND_ERR)/.test(code)) return true;
    return layer instanceof TypeError && /fetch failed/i.test(layer.message);
  });

/** HTTP status of a non-OAuth error answer (openid-client keeps the Response as the error's cause). */
export function upstreamStatus(error: unknown): number | undefined {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if (cause instanceof Response) return cause.status;
  // openid-client's error for an OAuth error body (ResponseBodyError) carries the HTTP status itself.
  const status = (error as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' && Number.isInteger(status) ? status : undefined;
}

/**
 * Maps anything a token-endpoint call failed with. Re-sign-in cases become `interaction_required` (the broker turns it
 * into a 401 that makes the MCP client re-authorize); an unreachable IdP `temporarily_unavailable`; the rest
 * (`invalid_client`, `unauthorized_client`, …: our registration is wrong, not the user's session) `server_error`.
 */
export function upstreamTokenError(error: unknown, context: string, interactionId?: string): UpstreamError {
  return tokenRequestError(error, context, interactionId, 'outage');
}

/**
 * As upstreamTokenError, for the token requests the broker makes (refresh, on-behalf-of, RFC 8693): an answer that is
 * no usable token response — a 200 of HTML, no `access_token` or `token_type`, an `expires_in` of -5, null or "abc", a
 * `token_type` openid-client does not know (RFC 8693's `N_A`) — is the identity provider answering wrongly: a 502, as
 * its refusals are, not an outage for callers to retry in a few seconds (503). At sign-in the same answer stays
 * `temporarily_unavailable`: a refusal there reads as the browser's callback being bad. A refused refresh answer
 * carries the refresh token it rotated to (refusedAnswerRefreshToken).
 */
export function brokerTokenError(error: unknown, context: string): UpstreamError {
  return tokenRequestError(error, context, undefined, 'unusable answer');
}

/**
 * A token answer that is not a usable access token (brokerTokenError, or the upstream client's own checks): a 502
 * whose description is generic. It keeps no cause: openid-client's errors hold the answer's body, access token and all.
 */
export class UnusableTokenAnswer extends UpstreamError {
  /** The request answered: `refresh`, `on-behalf-of`, `token-exchange`, `authorization code`. */
  readonly operation: string;
  /** What was wrong, for the log: the property and the check, never a value from the answer. */
  readonly problem: string;
  /**
   * The refresh token the refused answer carried. A refresh answered 200 has rotated even when its access token is
   * refused: the one presented is spent, and presented again the IdP sees it reused and ends the session (RFC 9700
   * §4.14.2). Private, so no log line or serializer that takes the error's fields can see it.
   */
  readonly #refreshToken: string | undefined;
  constructor(operation: string, problem: string, refreshToken?: string) {
    super('server_error', `The identity provider's answer to the ${operation} request is not a usable access token.`);
    this.name = 'UnusableTokenAnswer';
    this.operation = operation;
    this.problem = problem;
    this.#refreshToken = refreshToken;
  }

  /** The refresh token the refused answer carried, if any (see `#refreshToken`). */
  rotatedRefreshToken(): string | undefined {
    return this.#refreshToken;
  }
}

function tokenRequestError(error: unknown, context: string, interactionId: string | undefined, unreadable: 'outage' | 'unusable answer'): UpstreamError {
  if (error instanceof UpstreamError) return error;
  const body = oauthErrorBody(error);
  if (body) {
    const upstreamError = typeof body.error === 'string' ? body.error : undefined;
    const codes = aadstsCodes(body);
    const claims = typeof body.claims === 'string' && body.claims.length > 0 ? body.claims : undefined;
    const details = { upstreamError, upstreamErrorCodes: codes, claims, interactionId };
    const sanitizedCause = { error: upstreamError, error_codes: codes, claims: claims !== undefined };
    if (claims || (upstreamError && reauthorizationErrors.has(upstreamError)) || codes.some((code) => reauthorizationAadsts.has(code.slice(6)))) {
      return new UpstreamError(
        'interaction_required',
        `The identity provider needs the user to sign in again (${context}: ${upstreamError ?? 'error'}${codes.length ? ` ${codes.join(',')}` : ''}).`,
        details,
        { cause: sanitizedCause },
      );
    }
    // An IdP throttling the gateway (HTTP 429, whatever its `error` says) is unavailable for now, not a refusal.
    if (upstreamError === 'temporarily_unavailable' || upstreamError === 'server_error' || upstreamStatus(error) === 429) {
      return new UpstreamError('temporarily_unavailable', `The identity provider is unavailable (${context}).`, details, { cause: sanitizedCause });
    }
    return new UpstreamError('server_error', `The identity provider refused the ${context} request (${upstreamError ?? 'error'}).`, details, {
      cause: sanitizedCause,
    });
  }
  if (isNetworkFailure(error)) {
    return new UpstreamError('temporarily_unavailable', `The identity provider did not answer (${context}).`, { interactionId }, { cause: error });
  }
  const status = upstreamStatus(error);
  if (status !== undefined && (status >= 500 || status === 429)) {
    return new UpstreamError('temporarily_unavailable', `The identity provider answered with a server error, HTTP ${status} (${context}).`, { interactionId }, { cause: error });
  }
  if (unreadable === 'unusable answer' && (isUnreadableProviderAnswer(error) || causeChain(error).some((layer) => layer.code === 'OAUTH_UNSUPPORTED_OPERATION'))) {
    const { check } = failureDetail(error);
    const rotated = context === 'refresh' ? refusedAnswerRefreshToken(error) : undefined;
    return new UnusableTokenAnswer(context, typeof check === 'string' ? check : 'not a token response', rotated);
  }
  if (isUnreadableProviderAnswer(error)) {
    return new UpstreamError('temporarily_unavailable', `The identity provider answered with something that is not an OAuth response (${context}).`, { interactionId }, { cause: error });
  }
  return new UpstreamError('server_error', `The ${context} request to the identity provider failed.`, { interactionId }, { cause: error });
}

/**
 * The refresh token of an answer openid-client refused before Gatehouse's own checks (no `access_token`, an
 * `expires_in` of -5, `token_type` `N_A`): the IdP answered, so it has rotated, and the one presented is spent
 * (UnusableTokenAnswer). oauth4webapi hangs the parsed answer on the cause chain as `{ body }`; only a non-empty
 * string is taken from it, and the body itself is neither kept nor logged.
 */
function refusedAnswerRefreshToken(error: unknown): string | undefined {
  for (const layer of causeChain(error)) {
    const refreshToken = typeof layer.body === 'object' && layer.body !== null ? (layer.body as { refresh_token?: unknown }).refresh_token : undefined;
    if (typeof refreshToken === 'string' && refreshToken.length > 0) return refreshToken;
  }
  return undefined;
}

/** @see RFC 6749 §4.1.2.1 — the upstream's own error, shown as ours with the interaction it belongs to. */
export function authorizationResponseError(error: string, interactionId: string): UpstreamError {
  // Kept for the log only as an error code can be (RFC 6749 §4.1.2.1: printable ASCII, no `"` or `\`): the value
  // comes from a URL anyone can send, and was logged whole — up to the URL's length, terminal escapes included.
  // A JWT short enough to pass for a code is cut out as the log cuts one out of a URL.
  const details = { upstreamError: /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(error) ? withoutJwts(error) : 'unreadable_error_code', interactionId };
  switch (error) {
    case 'access_denied':
      return new UpstreamError('access_denied', 'The sign-in was cancelled or refused at the identity provider.', details);
    case 'temporarily_unavailable':
    case 'server_error':
      return new UpstreamError('temporarily_unavailable', 'The identity provider could not complete the sign-in; try again.', details);
    case 'interaction_required':
    case 'login_required':
    case 'consent_required':
      return new UpstreamError('access_denied', 'The identity provider needs more from the user than this sign-in allowed.', details);
    default:
      return new UpstreamError('access_denied', 'The identity provider refused the sign-in.', details);
  }
}

/**
 * Why a call to the identity provider failed, as far as an operator needs and a log may hold: the names and codes
 * along the error's cause chain, the claim a JWT check named, and the fixed message of a check of the JWT or
 * OAuth libraries (those name the check, never the token). Not response bodies, which may echo an assertion. An ID
 * token refused for its audience, its signature or its issuer used to log one line for all of them.
 */
export function failureDetail(error: unknown): Record<string, unknown> {
  const chain: string[] = [];
  let claim: unknown;
  let check: string | undefined;
  for (const layer of causeChain(error, 4)) {
    // Errors only: a library may hang other objects on `cause` (jose: the claims checked), which are not logged.
    if (typeof layer.name !== 'string' || typeof layer.message !== 'string') break;
    chain.push(typeof layer.code === 'string' ? `${layer.name}(${layer.code})` : layer.name);
    if (typeof layer.claim === 'string') claim ??= layer.claim;
    // jose's JOSEError codes start ERR_J; openid-client's (oauth4webapi) OAUTH_: their messages describe the check.
    // The deepest says most: openid-client wraps a specific check (an `iss` naming another issuer) in its generic
    // "invalid response encountered", which alone cannot tell a mix-up attack from a missing code.
    // Gatehouse's own discovery checks (discovery.ts UpstreamDiscoveryError) name the field and what is wrong with it.
    if (typeof layer.code === 'string' && /^(ERR_J|OAUTH_|GH_UPSTREAM_DISCOVERY$)/.test(layer.code)) check = layer.message.slice(0, 200);
  }
  return { failure: chain.join(' ← '), ...(claim === undefined ? {} : { claim }), ...(check === undefined ? {} : { check }) };
}

/**
 * Whether a failed token request failed on the identity provider's answer itself — not JSON, a status with no OAuth
 * error in it (an HTML error page, a WAF's 401), a body missing what every token response has — rather than on the
 * callback the browser brought (an `iss` naming another issuer, no code: bad input). The first is the provider
 * failing, to retry and to alert on; it was shown to the user as a refused sign-in and never counted.
 */
export function isUnreadableProviderAnswer(error: unknown): boolean {
  // An answer over the size any provider answer has (runtime/capped-fetch.ts) is unreadable too.
  // openid-client wraps what went wrong (a JSON parse error in "something went wrong"): look along the causes.
  return causeChain(error).some((layer) => {
    if (layer instanceof SyntaxError || layer instanceof ResponseTooLargeError) return true;
    const { code, message } = layer;
    if (code === 'OAUTH_RESPONSE_IS_NOT_JSON' || code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || code === 'OAUTH_PARSE_ERROR') return true;
    return code === 'OAUTH_INVALID_RESPONSE' && typeof message === 'string' && message.startsWith('"response" body');
  });
}
