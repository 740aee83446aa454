import { ProtocolError } from './protocol-error.ts';

/**
 * `WWW-Authenticate` challenges for protected routes.
 *
 * @see RFC 6750 §3 — `error="invalid_token"` only when a token was sent; no error code when none was.
 * @see RFC 9728 §5.1 — `resource_metadata` points the client at the route's Protected Resource Metadata.
 * @see MCP 2025-11-25 authorization, scope selection — `scope` names every scope the request needs.
 */
export interface ChallengeTarget {
  /** Absolute URL of the route's PRM document. */
  resourceMetadataUrl: string;
  /** Scopes needed, space-separated. */
  scope: string;
}

const quoted = (value: string): string => `"${value.replace(/[\\"]/g, '\\$&')}"`;

export function bearerChallenge(target: ChallengeTarget, error?: 'invalid_token' | 'insufficient_scope'): string {
  const parts = [`resource_metadata=${quoted(target.resourceMetadataUrl)}`];
  if (target.scope) parts.push(`scope=${quoted(target.scope)}`);
  if (error) parts.push(`error=${quoted(error)}`);
  return `Bearer ${parts.join(', ')}`;
}

/** 401: no token, or a token that does not verify. The description never echoes the token. */
export function unauthorized(target: ChallengeTarget, tokenSent: boolean, description?: string): ProtocolError {
  return new ProtocolError('invalid_token', description ?? (tokenSent ? undefined : 'An access token is required.'), {
    headers: { 'www-authenticate': bearerChallenge(target, tokenSent ? 'invalid_token' : undefined) },
  });
}

/** 403: a valid token lacking scopes; `scope` lists all scopes needed so the client can step up in one go. */
export function insufficientScope(target: ChallengeTarget, description?: string): ProtocolError {
  return new ProtocolError('insufficient_scope', description, {
    scope: target.scope,
    headers: { 'www-authenticate': bearerChallenge(target, 'insufficient_scope') },
  });
}
