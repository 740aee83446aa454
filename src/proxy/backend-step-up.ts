import { unauthorized, type AuthScheme, type ChallengeTarget } from '../errors/bearer-challenge.ts';
import type { ProtocolError } from '../errors/protocol-error.ts';
import type { EndGrant } from '../grants/end-grant.ts';
import type { GrantEndReason } from '../grants/grant-end-reason.ts';
import { forgetDownstreamTokens } from '../records/downstream-tokens.ts';
import { pendingStepUp, rememberStepUp } from '../records/step-up.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';

/**
 * A step-up met by the backend rather than by the gateway: a backend that obtains its own downstream tokens (through
 * the gateway's token exchange) or that calls Graph with the token the gateway forwarded answers the MCP request with
 * `401` and `WWW-Authenticate: Bearer error="insufficient_claims"` — Graph's own answer under continuous access
 * evaluation, optionally with the base64 `claims` challenge. Passed on as is, the client could do nothing with it (it
 * names the backend, not the gateway's resource), so the gateway turns it into its own challenge and ends the grant,
 * exactly as for a step-up it met itself (identity-forwarding.ts says why the grant ends).
 *
 * The backend cannot end a user's grant on a bare 401: it must bring the challenge, or the broker must have met
 * the step-up, or found the user's upstream session ended, for this user (src/records/step-up.ts). Otherwise the 401 stays what it was: a backend refusing the
 * gateway's identity (502). What a backend can reach is the calling user's own grant and step-up only (it could as
 * well refuse to serve them), never another user's.
 * @see RFC 6750 §3; Entra continuous access evaluation (`insufficient_claims`, `claims` in `WWW-Authenticate`)
 */
export interface BackendStepUp {
  /** The client's answer for a backend's 401, or undefined when that 401 is not a step-up. */
  answer(input: {
    subject: string;
    grantId: string;
    challenge: ChallengeTarget;
    /** How the caller presented its token: the error goes on that scheme's challenge (RFC 9449 §7.1). */
    scheme?: AuthScheme;
    wwwAuthenticate: string | string[] | undefined;
  }): Promise<ProtocolError | undefined>;
}

/** Entra's claims challenges are a few hundred bytes. */
const MAX_CHALLENGE_LENGTH = 8192;

/** `{ claims }` for a Bearer `insufficient_claims` challenge (claims: its decoded JSON when valid), else undefined. */
export function parseClaimsChallenge(header: string | string[] | undefined): { claims?: string } | undefined {
  const value = Array.isArray(header) ? header.join(', ') : header;
  if (value === undefined || value.length > MAX_CHALLENGE_LENGTH || !/^\s*bearer\b/i.test(value)) return undefined;
  if (!/\berror\s*=\s*"?insufficient_claims"?/i.test(value)) return undefined;
  const encoded = /\bclaims\s*=\s*"([A-Za-z0-9+/=_-]+)"/i.exec(value)?.[1];
  const claims = encoded === undefined ? undefined : decodedClaims(encoded);
  return claims === undefined ? {} : { claims };
}

/**
 * The challenge is base64 of a JSON object naming access-token claims only (`{"access_token":{…}}`, the one shape
 * Entra's claims challenges take); anything else is not replayed to the IdP. The backend is not trusted with the
 * user's sign-in: it may ask the IdP to step the user up, not request ID token or userinfo members (OIDC Core §5.5,
 * with their `value`s), which shape the identity the gateway takes from that sign-in.
 */
function decodedClaims(encoded: string): string | undefined {
  const text = Buffer.from(encoded, encoded.includes('-') || encoded.includes('_') ? 'base64url' : 'base64').toString('utf8');
  try {
    const parsed: unknown = JSON.parse(text);
    return isAccessTokenClaimsRequest(parsed) ? JSON.stringify(parsed) : undefined;
  } catch {
    return undefined;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function isAccessTokenClaimsRequest(value: unknown): boolean {
  return isObject(value) && Object.keys(value).length === 1 && isObject(value.access_token);
}

export function createBackendStepUp(deps: { store: Store; clock: Clock; endGrant: EndGrant }): BackendStepUp {
  const { store, clock, endGrant } = deps;
  return {
    async answer({ subject, grantId, challenge, scheme, wwwAuthenticate }) {
      const parsed = parseClaimsChallenge(wwwAuthenticate);
      if (parsed === undefined) return undefined;
      let ending: GrantEndReason = 'upstream_step_up';
      if (parsed.claims !== undefined) {
        await rememberStepUp(store, subject, { reason: 'claims_challenge', claims: parsed.claims, createdAt: clock.now() });
        // The downstream token the backend was refused with must not be served again from the cache.
        await forgetDownstreamTokens(store, subject);
      } else {
        // What the broker met for this user when the backend asked it for a token (token-broker.ts).
        const pending = await pendingStepUp(store, subject);
        if (pending === undefined) return undefined;
        if (pending.reason === 'upstream_session_ended') ending = 'upstream_invalid_grant';
      }
      await endGrant(grantId, ending);
      return unauthorized(challenge, true, 'The identity provider needs you to sign in again; re-authorize this client.', scheme);
    },
  };
}
