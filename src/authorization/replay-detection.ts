import { createHash } from 'node:crypto';
import Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { CHALLENGE_OK_WINDOW } from 'oidc-provider/lib/helpers/challenge.js';
import { TokenEndpointError } from '../errors/token-endpoint-error.ts';
import { ASSERTION_CLOCK_SKEW_SECONDS, MAX_ASSERTION_LIFETIME_SECONDS } from './grants/assertion-replay.ts';
import { seconds, type Clock } from '../runtime/clock.ts';
import { providerFacing } from '../store/oidc-adapter.ts';
import { oidcRecord } from '../store/oidc-records.ts';
import { createRecord } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';

interface ReplayDetectionModel {
  unique(iss: string, jti: string, exp: number): Promise<boolean>;
}

/**
 * The token endpoint's replay check of DPoP proofs (RFC 9449 §11.1) and `private_key_jwt` client assertions
 * (RFC 7523 §3 item 7). oidc-provider's `ReplayDetection.unique` finds, then saves: two requests carrying the same
 * proof or assertion at once — on two replicas, or on one — both find nothing and both pass. Here it is one
 * `setIfAbsent` on the shared store, as the gateway checks its own proofs (src/proxy/dpop-proof.ts): exactly one of
 * them creates the record. A store outage is a 503, never a pass.
 */
export function installAtomicReplayDetection(provider: Provider, deps: { store: Store; clock: Clock }): void {
  const { store, clock } = deps;
  const record = oidcRecord('ReplayDetection');
  const model = provider.ReplayDetection as ReplayDetectionModel;
  model.unique = async (iss, jti, exp) => {
    // A separator, so `iss` + `jti` cannot be split two ways (oidc-provider concatenates them as they are).
    const id = createHash('sha256').update(`${iss}\n${jti}`).digest('base64url');
    const proof = dpopProofClaims(Provider.ctx as KoaContextWithOIDC | undefined);
    const isProof = proof?.jti === jti;
    // oidc-provider passes `exp` = now + the iat window for a proof, but accepts a proof until its `iat` + the window:
    // one signed with an `iat` ahead of the clock stayed valid after its record went, and could be used again.
    const until = isProof && typeof proof.iat === 'number' ? Math.max(exp, proof.iat + CHALLENGE_OK_WINDOW + 1) : exp;
    // Client assertions are refused past this bound (assertJwtClientAuthClaimsAndHeader), so the cap never cuts a live
    // one short; it keeps any `exp` from reaching the store as a TTL out of its range (Redis refuses those).
    const ttlSeconds = Math.min(Math.max(1, Math.ceil(until - seconds(clock.now()))), MAX_REPLAY_RECORD_SECONDS);
    const first = await providerFacing(createRecord(store, record, id, { iss, jti: id, exp: until }, { ttlSeconds }));
    // oidc-provider answers a replayed DPoP proof at /token as `invalid_grant`; RFC 9449 §5 says `invalid_dpop_proof`,
    // as the gateway says at every route.
    if (!first && isProof) {
      throw new TokenEndpointError('invalid_dpop_proof', 'The DPoP proof was already used; sign a new one.', { status: 400, detail: 'DPoP proof replayed' });
    }
    return first;
  };
}

/** The longest a replay record lives: the longest assertion accepted, with clock skew on either side. */
const MAX_REPLAY_RECORD_SECONDS = MAX_ASSERTION_LIFETIME_SECONDS + 2 * ASSERTION_CLOCK_SKEW_SECONDS;

/** The `jti` and `iat` of the request's DPoP proof (already verified when the replay check runs), if it has one. */
function dpopProofClaims(ctx: KoaContextWithOIDC | undefined): { jti?: unknown; iat?: unknown } | undefined {
  const proof = ctx?.get('DPoP');
  if (typeof proof !== 'string' || proof === '') return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(proof.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null ? (claims as { jti?: unknown; iat?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}
