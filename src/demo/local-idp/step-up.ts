import { createHmac } from 'node:crypto';

/**
 * DEVELOPMENT ONLY — the local IdP's stand-in for Entra Conditional Access with multi-factor authentication. A user
 * flagged `requireMfa` gets no downstream token on behalf of them unless their access token says MFA was done
 * (`amr` contains `mfa`, as in Entra tokens); otherwise the exchange answers as Entra does (AADSTS50076 with a
 * `claims` challenge). The gateway sends that challenge back as the `claims` authorization parameter, and the sign-in
 * page then asks for a one-time code, shown on the page itself (this is a demo, not a second factor).
 */

/** The policy id the challenge names (Entra names the Conditional Access policies that apply, `polids`). */
export const LOCAL_MFA_POLICY_ID = '3c8f5e1a-7d2b-4c6e-9a0f-1b2d3e4f5a6b';

/** Entra's claims challenge for an on-behalf-of request blocked by an MFA policy. */
export function mfaClaimsChallenge(): string {
  return JSON.stringify({ access_token: { polids: { essential: true, values: [LOCAL_MFA_POLICY_ID] } } });
}

/** Access-token claims an Entra claims challenge can ask for; any of them means "satisfy the policy interactively". */
const stepUpClaimNames = ['polids', 'capolids', 'acrs', 'amr'];

/** Whether an authorization request's `claims` parameter asks for a step-up (malformed JSON asks for nothing). */
export function requestsStepUp(claims: unknown): boolean {
  if (typeof claims !== 'string' || claims.length > 4096) return false;
  try {
    const parsed: unknown = JSON.parse(claims);
    const accessToken = typeof parsed === 'object' && parsed !== null ? (parsed as { access_token?: unknown }).access_token : undefined;
    return typeof accessToken === 'object' && accessToken !== null && stepUpClaimNames.some((name) => name in accessToken);
  } catch {
    return false;
  }
}

export const MFA_AMR = ['pwd', 'mfa'];

export const hasMfa = (amr: unknown): boolean => Array.isArray(amr) && amr.includes('mfa');

/** The demo's one-time code for one sign-in: derived from the interaction id, so nothing needs storing. */
export function oneTimeCodeFor(secret: string, interactionUid: string): string {
  const digest = createHmac('sha256', secret).update(interactionUid).digest();
  return String(digest.readUInt32BE(0) % 1_000_000).padStart(6, '0');
}
