import { DPOP_SIGNING_ALGS } from '../protocol/dpop.ts';
import { ProtocolError } from './protocol-error.ts';

/**
 * `WWW-Authenticate` challenges for protected routes.
 *
 * @see RFC 6750 §3 — `error="invalid_token"` only when a token was sent; no error code when none was.
 * @see RFC 9728 §5.1 — `resource_metadata` points the client at the route's Protected Resource Metadata.
 * @see MCP 2025-11-25 authorization, scope selection — `scope` names every scope the request needs.
 * @see RFC 9449 §7.1 — a resource server accepting DPoP says so with a `DPoP` challenge naming its `algs`; one that
 *   accepts both schemes sends both challenges. The error goes on the scheme the client used.
 */
export interface ChallengeTarget {
  /** Absolute URL of the route's PRM document. */
  resourceMetadataUrl: string;
  /** Scopes needed, space-separated. */
  scope: string;
  /**
   * The route's DPoP policy (absent: Bearer only). `required` drops the Bearer challenge (a Bearer token is refused
   * there) and moves `resource_metadata` and `scope` into the DPoP one, where MCP clients read them too.
   */
  dpop?: 'optional' | 'required';
}

/** How the client presented its token (RFC 6750 `Bearer`, RFC 9449 `DPoP`). */
export type AuthScheme = 'bearer' | 'dpop';

type ChallengeError = 'invalid_token' | 'insufficient_scope' | 'invalid_dpop_proof' | 'use_dpop_nonce';

const quoted = (value: string): string => `"${value.replace(/[\\"]/g, '\\$&')}"`;

export function bearerChallenge(target: ChallengeTarget, error?: ChallengeError, scheme: AuthScheme = 'bearer'): string {
  const discovery = [`resource_metadata=${quoted(target.resourceMetadataUrl)}`];
  if (target.scope) discovery.push(`scope=${quoted(target.scope)}`);
  const challenges: string[] = [];
  if (target.dpop !== 'required') {
    const bearer = error !== undefined && scheme === 'bearer' ? [...discovery, `error=${quoted(error)}`] : discovery;
    challenges.push(`Bearer ${bearer.join(', ')}`);
  }
  if (target.dpop !== undefined) {
    const dpop = target.dpop === 'required' ? [...discovery] : [];
    dpop.push(`algs=${quoted(DPOP_SIGNING_ALGS.join(' '))}`);
    if (error !== undefined && (scheme === 'dpop' || target.dpop === 'required')) dpop.push(`error=${quoted(error)}`);
    challenges.push(`DPoP ${dpop.join(', ')}`);
  }
  return challenges.join(', ');
}

/** 401: no token, or a token that does not verify. The description never echoes the token. */
export function unauthorized(target: ChallengeTarget, tokenSent: boolean, description?: string, scheme: AuthScheme = 'bearer'): ProtocolError {
  return new ProtocolError('invalid_token', description ?? (tokenSent ? undefined : 'An access token is required.'), {
    headers: { 'www-authenticate': bearerChallenge(target, tokenSent ? 'invalid_token' : undefined, scheme) },
    ...(tokenSent ? {} : { detail: NO_TOKEN_DETAIL }),
  });
}

/** The logged detail of a 401 to a request that sent no token at all (a client's discovery step, not a refused token). */
export const NO_TOKEN_DETAIL = 'no access token sent';

/** 403: a valid token lacking scopes; `scope` lists all scopes needed so the client can step up in one go. */
export function insufficientScope(target: ChallengeTarget, description?: string, scheme: AuthScheme = 'bearer'): ProtocolError {
  return new ProtocolError('insufficient_scope', description, {
    scope: target.scope,
    headers: { 'www-authenticate': bearerChallenge(target, 'insufficient_scope', scheme) },
  });
}

/**
 * 401 for a DPoP proof that is refused (RFC 9449 §7.1), or that lacks the current nonce (§9: `use_dpop_nonce` with
 * a fresh `DPoP-Nonce` the client retries with).
 */
export function dpopProofRefused(
  target: ChallengeTarget,
  code: 'invalid_dpop_proof' | 'use_dpop_nonce',
  description: string,
  nonce?: string,
): ProtocolError {
  const headers: Record<string, string> = { 'www-authenticate': bearerChallenge({ ...target, dpop: target.dpop ?? 'optional' }, code, 'dpop') };
  if (nonce !== undefined) headers['dpop-nonce'] = nonce;
  return new ProtocolError(code, description, { headers });
}
