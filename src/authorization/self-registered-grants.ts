/**
 * The grants a client that registered itself (RFC 7591 dynamic registration, a client ID metadata document) may
 * hold: the interactive ones, where a user signs in and consents. Client credentials, jwt-bearer and token exchange
 * give tokens no user approved, so only a client the operator configured may have them; a self-registered client
 * asking for `client_credentials` would otherwise mint app-only tokens for every route, with no one's consent.
 * @see RFC 7591 §5 (the server may reject or replace requested metadata), MCP client-credentials extension
 */
export const SELF_REGISTERED_GRANT_TYPES: readonly string[] = ['authorization_code', 'refresh_token'];

/**
 * Why a client's requested grants are refused, or undefined; clients the operator configured are not limited.
 * The metadata is as the provider read it, its defaults filled in (`grant_types` and `response_types` the client
 * left out are the defaults, which are the code flow with refresh tokens).
 */
export function selfRegisteredGrantsProblem(metadata: Record<string, unknown>, configuredClientIds: ReadonlySet<string>): string | undefined {
  if (typeof metadata.client_id === 'string' && configuredClientIds.has(metadata.client_id)) return undefined;
  const grantTypes = Array.isArray(metadata.grant_types) ? (metadata.grant_types as unknown[]) : [];
  const refused = grantTypes.filter((grant) => typeof grant !== 'string' || !SELF_REGISTERED_GRANT_TYPES.includes(grant));
  if (refused.length > 0) return `grant_types may only be ${SELF_REGISTERED_GRANT_TYPES.join(' and ')} for a client that registers itself`;
  return codeFlowProblem(metadata);
}

/**
 * A self-registered client has only the code flow to obtain tokens with: metadata that leaves it without the flow
 * would be registered as a client that can never authorize. The provider does not refuse it, it repairs it: with
 * `response_types: []` it dropped `authorization_code` (the client kept `["refresh_token"]`, and every `/authorize`
 * failed), and `grant_types: []` became `["authorization_code"]` (silently no refresh tokens, unlike leaving it out).
 * (`response_types` other than `code` the provider refuses itself: `response_types_supported`.)
 * @see RFC 7591 §2.1 (grant_types and response_types go together), OAuth 2.1 §4.1
 */
function codeFlowProblem(metadata: Record<string, unknown>): string | undefined {
  const responseTypes = Array.isArray(metadata.response_types) ? (metadata.response_types as unknown[]) : [];
  if (!responseTypes.includes('code')) {
    return 'response_types must include "code": a client that registers itself obtains tokens with the authorization code flow (leave it out for ["code"])';
  }
  if (Array.isArray(metadata.grant_types) && metadata.grant_types.length === 0) {
    return 'grant_types must name the grants the client uses (leave it out for ["authorization_code", "refresh_token"])';
  }
  return undefined;
}
