/**
 * The grants a client that registered itself (RFC 7591 dynamic registration, a client ID metadata document) may
 * hold: the interactive ones, where a user signs in and consents. Client credentials, jwt-bearer and token exchange
 * give tokens no user approved, so only a client the operator configured may have them; a self-registered client
 * asking for `client_credentials` would otherwise mint app-only tokens for every route, with no one's consent.
 * @see RFC 7591 §5 (the server may reject or replace requested metadata), MCP client-credentials extension
 */
export const SELF_REGISTERED_GRANT_TYPES: readonly string[] = ['authorization_code', 'refresh_token'];

/** Why a client's requested grants are refused, or undefined; clients the operator configured are not limited. */
export function selfRegisteredGrantsProblem(metadata: Record<string, unknown>, configuredClientIds: ReadonlySet<string>): string | undefined {
  if (typeof metadata.client_id === 'string' && configuredClientIds.has(metadata.client_id)) return undefined;
  const grantTypes = Array.isArray(metadata.grant_types) ? (metadata.grant_types as unknown[]) : [];
  const refused = grantTypes.filter((grant) => typeof grant !== 'string' || !SELF_REGISTERED_GRANT_TYPES.includes(grant));
  if (refused.length === 0) return undefined;
  return `grant_types may only be ${SELF_REGISTERED_GRANT_TYPES.join(' and ')} for a client that registers itself`;
}
