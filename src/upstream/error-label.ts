import { causeChain } from '../errors/cause-chain.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { isNetworkFailure, UpstreamError } from './errors.ts';

/**
 * OAuth error codes an identity provider answers with (RFC 6749 §4.1.2.1 and §5.2, OIDC Core §3.1.2.6, RFC 8693
 * §2.2.2, RFC 8707 §2). Anything else an IdP sends is counted as `other_oauth_error`.
 */
const oauthErrors = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'unsupported_response_type',
  'invalid_scope',
  'invalid_target',
  'access_denied',
  'server_error',
  'temporarily_unavailable',
  'interaction_required',
  'login_required',
  'consent_required',
  'account_selection_required',
  'invalid_request_uri',
  'invalid_request_object',
  'request_not_supported',
  // Not the IdP's answer but ours (entra.ts): the user's tenant is not allowed.
  'tenant_not_allowed',
]);

/** The OAuth `error` the IdP answered with, from our UpstreamError or openid-client's ResponseBodyError. */
function answeredError(error: unknown): string | undefined {
  for (const layer of causeChain(error)) {
    if (layer instanceof UpstreamError && layer.upstreamError !== undefined) return layer.upstreamError;
    if (layer.code === 'OAUTH_RESPONSE_BODY_ERROR' && typeof layer.error === 'string') return layer.error;
  }
  return undefined;
}

/**
 * The `error` label of `gatehouse_upstream_errors_total`: the IdP's OAuth error code when it answered with one,
 * `unreachable` when it did not answer (network, timeout), else our own error code. The set of values is bounded
 * whatever the IdP (or a forged callback) sends, because every distinct label value is a new time series.
 */
export function upstreamErrorLabel(error: unknown): string {
  const answered = answeredError(error);
  if (answered !== undefined) return oauthErrors.has(answered) ? answered : 'other_oauth_error';
  if (isNetworkFailure(error)) return 'unreachable';
  if (error instanceof ProtocolError) return error.code;
  return 'other';
}
