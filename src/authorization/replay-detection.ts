import { createHash } from 'node:crypto';
import Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { CHALLENGE_OK_WINDOW } from 'oidc-provider/lib/helpers/challenge.js';
import validateDpop, { getDpopJwt } from 'oidc-provider/lib/helpers/validate_dpop.js';
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
 *
 * oidc-provider keys a proof on the client presenting it: a proof used by one client was taken again by any other
 * (a workload request naming another client got a token bound to the same key). A proof is used once whoever sends
 * it, so it is also recorded under its key's thumbprint, as the gateway records proofs at its routes.
 */
export function installAtomicReplayDetection(provider: Provider, deps: { store: Store; clock: Clock }): void {
  const { store, clock } = deps;
  const record = oidcRecord('ReplayDetection');
  const model = provider.ReplayDetection as ReplayDetectionModel;
  model.unique = async (iss, jti, exp) => {
    const proof = await verifiedDpopProof(provider, Provider.ctx as KoaContextWithOIDC | undefined);
    const isProof = proof?.jti === jti;
    // oidc-provider passes `exp` = now + the iat window for a proof, but accepts a proof until its `iat` + the window:
    // one signed with an `iat` ahead of the clock stayed valid after its record went, and could be used again.
    const until = isProof ? Math.max(exp, proof.iat + CHALLENGE_OK_WINDOW + 1) : exp;
    // Client assertions are refused past this bound (assertJwtClientAuthClaimsAndHeader), so the cap never cuts a live
    // one short; it keeps any `exp` from reaching the store as a TTL out of its range (Redis refuses those).
    const ttlSeconds = Math.min(Math.max(1, Math.ceil(until - seconds(clock.now()))), MAX_REPLAY_RECORD_SECONDS);
    // The client's key stays for a proof too: this check cannot tell a proof from a client assertion carrying the same
    // `jti`, and a replayed assertion must not pass as new under the key of a proof sent with it.
    const issuers = isProof ? [iss, `DPoP proof key ${proof.thumbprint}`] : [iss];
    let first = true;
    for (const issuer of issuers) {
      // A separator, so `iss` + `jti` cannot be split two ways (oidc-provider concatenates them as they are).
      const id = createHash('sha256').update(`${issuer}\n${jti}`).digest('base64url');
      first = await providerFacing(createRecord(store, record, id, { iss: issuer, jti: id, exp: until }, { ttlSeconds }));
      if (!first) break;
    }
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

/**
 * The request's DPoP proof as oidc-provider verified it (its key's thumbprint, `jti`, `iat`), if it has verified one:
 * a proof's replay check runs only after. Never verified here: a header at an endpoint that takes no proof (a client
 * assertion checked at revocation) is none of this check's business.
 */
async function verifiedDpopProof(provider: Provider, ctx: KoaContextWithOIDC | undefined): Promise<{ thumbprint: string; jti: string; iat: number } | undefined> {
  // A check outside a request of this provider (the async-local context is another's, or none) has no proof.
  if (ctx?.oidc?.provider !== provider || getDpopJwt(provider, ctx) === undefined) return undefined;
  // Verified already: this answers the result it kept for the request.
  return validateDpop(provider, ctx);
}
