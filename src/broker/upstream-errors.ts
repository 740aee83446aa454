import { causeChain } from '../errors/cause-chain.ts';
import { ProtocolError, type ErrorCode } from '../errors/protocol-error.ts';
import { StoreUnavailableError } from '../store/store.ts';
import type { StepUpReason } from '../records/step-up.ts';

/**
 * Turns whatever the upstream identity provider (or the network to it) failed with into the one thing the MCP client
 * can act on. The broker never shows the IdP's raw `error_description` to the client: Entra's contains trace and
 * correlation ids and, for claims challenges, the challenge itself; those go to the log only.
 */

/** Why the user has to go back through the authorization flow; kept in the error's `cause` and in the log. */
export type ReauthorizationReason =
  | 'consent_required'
  | 'interaction_required'
  | 'claims_challenge'
  | 'refresh_token_invalid'
  | 'no_upstream_session';

/** The parts of an OAuth error response (RFC 6749 §5.2) plus Entra's extensions, from any error shape we may get. */
export interface UpstreamErrorDetails {
  error?: string;
  description?: string;
  /** Entra: `AADSTS65001` etc., taken from `error_codes` or the description. */
  aadsts?: string;
  /** Entra: a claims challenge (Conditional Access, MFA step-up) is present. */
  claims: boolean;
  /** HTTP status of the IdP's answer, when there was one. */
  status?: number;
  /** No answer at all: connection refused, reset, DNS, or our own timeout. */
  network: boolean;
}

const reauthorizationMessages: Record<ReauthorizationReason, string> = {
  consent_required: 'The user has not consented to the downstream API permission; sign in again to grant it.',
  interaction_required: 'The identity provider needs the user to sign in again (e.g. MFA or a changed policy).',
  claims_challenge: 'The identity provider requires additional claims (a Conditional Access step-up); sign in again.',
  refresh_token_invalid: 'The user\'s upstream session has expired or was revoked; sign in again.',
  no_upstream_session: 'There is no upstream session for this user; sign in again.',
};

/** Entra error codes that mean consent is missing (AADSTS65001) or was revoked (AADSTS65004). */
const consentCodes = new Set(['AADSTS65001', 'AADSTS65004']);
/** Entra error codes that mean the user must interact again: MFA (50076/50079), CA (53003, 50158), session gone. */
const interactionCodes = new Set([
  'AADSTS50076',
  'AADSTS50079',
  'AADSTS50158',
  'AADSTS53003',
  'AADSTS50173',
  'AADSTS50078',
  'AADSTS700082',
  'AADSTS70043',
  'AADSTS50132',
  'AADSTS70000',
]);

const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_SOCKET']);

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;
const stringField = (record: Record<string, unknown>, key: string): string | undefined =>
  typeof record[key] === 'string' ? record[key] : undefined;

/** Reads an error from openid-client (ResponseBodyError), a plain OAuth body, fetch or our own timeout. */
export function describeUpstreamError(error: unknown): UpstreamErrorDetails {
  const details: UpstreamErrorDetails = { claims: false, network: false };
  for (const layer of causeChain(error, 4)) {
    const code = stringField(layer, 'code');
    // src/upstream's UpstreamError keeps the IdP's answer in these fields.
    details.error ??= stringField(layer, 'upstreamError');
    if (Array.isArray(layer.upstreamErrorCodes) && typeof layer.upstreamErrorCodes[0] === 'string') {
      details.aadsts ??= layer.upstreamErrorCodes.find((c) => typeof c === 'string' && (consentCodes.has(c) || interactionCodes.has(c))) ?? layer.upstreamErrorCodes[0];
    }
    details.error ??= stringField(layer, 'error');
    details.description ??= stringField(layer, 'error_description');
    if (typeof layer.status === 'number') details.status ??= layer.status;
    const claims = layer.claims;
    if (claims === true || (typeof claims === 'string' && claims.length > 0) || isRecord(claims)) details.claims = true;
    // CAE (continuous access evaluation): `insufficient_claims` is the claims challenge's own error code.
    if (layer.error === 'insufficient_claims' || layer.upstreamError === 'insufficient_claims') details.claims = true;
    const first: unknown = Array.isArray(layer.error_codes) ? layer.error_codes[0] : undefined;
    if (typeof first === 'number' || (typeof first === 'string' && /^(AADSTS)?\d+$/.test(first))) {
      details.aadsts ??= String(first).startsWith('AADSTS') ? String(first) : `AADSTS${first}`;
    }
    if ((code !== undefined && networkCodes.has(code)) || layer.name === 'AbortError' || layer.name === 'TimeoutError') {
      details.network = true;
    }
    if (layer instanceof TypeError && /fetch failed/i.test(layer.message)) details.network = true;
  }
  details.aadsts ??= details.description?.match(/AADSTS\d+/)?.[0];
  return details;
}

/** `undefined` when the error does not call for the user to re-authorize. */
export function reauthorizationReason(details: UpstreamErrorDetails): ReauthorizationReason | undefined {
  if (details.claims) return 'claims_challenge';
  if (details.error === 'consent_required' || (details.aadsts && consentCodes.has(details.aadsts))) {
    return 'consent_required';
  }
  if (details.aadsts && interactionCodes.has(details.aadsts)) return 'interaction_required';
  if (details.error === 'interaction_required' || details.error === 'login_required') return 'interaction_required';
  // RFC 6749 §5.2: an invalid, expired or revoked refresh token / assertion. Only a new sign-in fixes it.
  if (details.error === 'invalid_grant') return 'refresh_token_invalid';
  return undefined;
}

/**
 * Entra codes of an `invalid_grant` to an on-behalf-of exchange that mean the gateway's configuration is wrong, not the
 * user's session: the assertion is not a token the app may present (AADSTS50027), or the app asked a token for itself
 * (AADSTS90009). A new sign-in mints the same kind of token: read as an ended session, every user of the route was
 * signed in again and refused again. Not AADSTS50013 / AADSTS500131 (the assertion's audience or signature): 50013 is
 * also Entra's catch-all for an assertion expired, malformed or signed with a key it no longer knows, and a user who
 * signed in before the operator added `access_as_user` to `upstream.scopes` holds a token of the wrong audience that
 * one refresh (which asks the configured scopes) fixes. Those are `unconfirmed`: renewed once, and a configuration
 * error when the renewed token is refused too.
 */
const configurationCodes = new Set(['AADSTS50027', 'AADSTS90009']);

/**
 * What an `invalid_grant` of the exchange itself (on-behalf-of, RFC 8693 — not the refresh before it) says of the
 * user's upstream session, when no code of it asks the user for anything (consent, MFA, a claims challenge, a session
 * Entra says it ended: those stand, and send the user to sign in): `configuration` — the gateway's setup is wrong;
 * `unconfirmed` — the IdP did not say why (a generic provider's bare `invalid_grant`, AADSTS50013 / 500131, an Entra
 * code not known here), which the broker asks the IdP about by renewing the session. `undefined` for any other failure.
 * @see RFC 8693 §2.2.2, RFC 6749 §5.2
 */
export function exchangeGrantRefusal(error: unknown): 'configuration' | 'unconfirmed' | undefined {
  const details = describeUpstreamError(error);
  if (reauthorizationReason(details) !== 'refresh_token_invalid') return undefined;
  return details.aadsts !== undefined && configurationCodes.has(details.aadsts) ? 'configuration' : 'unconfirmed';
}

/**
 * 502 for an exchange the IdP refused for the gateway's configuration (`invalid_client` is answered the same way by
 * upstreamFailure): no reason to sign in again, so the grant stands and waiters remembering it end nothing.
 */
export function misconfiguredExchange(cause: unknown): ProtocolError {
  return new ProtocolError('server_error', 'The identity provider refused the downstream token exchange; see the gateway log.', { status: 502, cause });
}

/**
 * What each reason that only a new sign-in with the IdP (not a refresh, not the gateway session) fixes is remembered
 * as, per user: a step-up the IdP asked for, or an upstream session that ended. An ended one is remembered too: the
 * gateway session would otherwise issue the next grant on the same dead upstream session (its refresh token refused,
 * or no tokens at all), and a backend that exchanges for its own tokens could not have its refusal honoured.
 */
const rememberedAs: Readonly<Record<ReauthorizationReason, StepUpReason>> = {
  claims_challenge: 'claims_challenge',
  interaction_required: 'interaction_required',
  consent_required: 'consent_required',
  refresh_token_invalid: 'upstream_session_ended',
  no_upstream_session: 'upstream_session_ended',
};

/**
 * What the next upstream sign-in must carry, when `failure` (from upstreamFailure) calls for one: the reason and
 * Entra's `claims` challenge, taken from the first layer of the cause chain that holds one as a string.
 * @see OIDC Core §5.5 (the `claims` request parameter); Entra "claims challenges" for Conditional Access and CAE
 */
export function stepUpOf(failure: ProtocolError): { reason: StepUpReason; claims?: string } | undefined {
  const cause: unknown = failure.cause;
  if (!isRecord(cause) || typeof cause.reason !== 'string' || !Object.hasOwn(rememberedAs, cause.reason)) return undefined;
  const reason = rememberedAs[cause.reason as ReauthorizationReason];
  const claims = causeChain(cause.cause).find((layer) => typeof layer.claims === 'string' && layer.claims.length > 0)?.claims as string | undefined;
  return claims === undefined ? { reason } : { reason, claims };
}

export function reauthorizationError(reason: ReauthorizationReason, cause?: unknown): ProtocolError {
  return new ProtocolError('interaction_required', reauthorizationMessages[reason], { cause: { reason, cause } });
}

/** The error the broker throws for an upstream failure, already safe to show. */
export function upstreamFailure(error: unknown, retryAfterSeconds: number): ProtocolError {
  // The store failed around an exchange the identity provider may well have answered: not the IdP's outage, which
  // the client was told and the log blamed (the error carries no HTTP status, so it read as a network failure).
  if (error instanceof StoreUnavailableError) return downstreamTokensUnavailable(error, error.retryAfterSeconds);
  if (error instanceof ProtocolError) {
    // The upstream client already classified it; for re-sign-in cases, say which one in the broker's own words.
    // An outage tells the caller when to come back, as the same failure remembered for the next callers does
    // (token-broker.ts): the upstream client's error carries no Retry-After of its own.
    if (error.code === 'temporarily_unavailable' && Object.keys(error.headers).length === 0) {
      return new ProtocolError('temporarily_unavailable', error.description, { headers: { 'Retry-After': String(retryAfterSeconds) }, cause: error });
    }
    if (error.code !== 'interaction_required') return error;
    // Already the broker's own (no upstream session, no refresh token): its reason stands. Re-derived from an IdP
    // answer it never had, it read as a step-up — remembered as one, worded as one, and the grant ended as one.
    if (isRecord(error.cause) && typeof error.cause.reason === 'string' && Object.hasOwn(reauthorizationMessages, error.cause.reason)) return error;
    return reauthorizationError(reauthorizationReason(describeUpstreamError(error)) ?? 'interaction_required', error);
  }
  const details = describeUpstreamError(error);
  const reason = reauthorizationReason(details);
  if (reason) return reauthorizationError(reason, error);
  const unavailable =
    details.network ||
    details.status === undefined ||
    details.status >= 500 ||
    details.error === 'temporarily_unavailable' ||
    details.error === 'server_error';
  if (unavailable) {
    return new ProtocolError('temporarily_unavailable', 'The identity provider is unavailable; retry later.', {
      headers: { 'Retry-After': String(retryAfterSeconds) },
      cause: error,
    });
  }
  // invalid_client, unauthorized_client, invalid_scope…: the gateway's registration is wrong, not the user's session.
  // 502: the failure is the identity provider's answer to the gateway, not the gateway's own.
  return new ProtocolError('server_error', 'The identity provider refused the token request; see the gateway log.', {
    status: 502,
    cause: error,
  });
}

/** 503 for a failure of the gateway's own store (or anything but the IdP): the caller can only retry. */
export function downstreamTokensUnavailable(cause: unknown, retryAfterSeconds: number): ProtocolError {
  return new ProtocolError('temporarily_unavailable', 'Downstream tokens are unavailable right now; retry later.', {
    headers: { 'Retry-After': String(retryAfterSeconds) },
    cause,
  });
}

/**
 * A broker failure as its records keep it (src/records/broker.ts) for the callers waiting on the same exchange or
 * refresh on every replica: what the first caller was told — code, words, status, `Retry-After`, the reason a new
 * sign-in is needed. Rebuilt from the code and words alone, the identity provider's refusal (a 502) reached every
 * caller after the first as the catalogue's 500 for `server_error`.
 */
export interface RememberedFailure {
  code: ErrorCode;
  description: string;
  status?: number | undefined;
  retryAfterSeconds?: number | undefined;
  reason?: string | undefined;
}

export function rememberFailure(failure: ProtocolError): RememberedFailure {
  const retryAfter = Number(failure.headers['Retry-After']);
  const reason = isRecord(failure.cause) && typeof failure.cause.reason === 'string' ? failure.cause.reason : undefined;
  return {
    code: failure.code,
    description: failure.message,
    status: failure.status,
    ...(Number.isInteger(retryAfter) && retryAfter > 0 ? { retryAfterSeconds: retryAfter } : {}),
    ...(reason === undefined ? {} : { reason }),
  };
}

/** The error a waiter throws for a failure another caller met: the same answer, and the same reason to end the grant. */
export function rememberedFailureError(failure: RememberedFailure): ProtocolError {
  return new ProtocolError(failure.code, failure.description, {
    ...(failure.status === undefined ? {} : { status: failure.status }),
    ...(failure.retryAfterSeconds === undefined ? {} : { headers: { 'Retry-After': String(failure.retryAfterSeconds) } }),
    ...(failure.reason === undefined ? {} : { cause: { reason: failure.reason } }),
  });
}
