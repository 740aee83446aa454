import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import validateDpop, { checkDpopReplay } from 'oidc-provider/lib/helpers/validate_dpop.js';
import { checkDpopRequired } from 'oidc-provider/lib/helpers/sender_constraints.js';

/**
 * DPoP for the grants Gatehouse registers at /token (RFC 7523 jwt-bearer: ID-JAG and workload tokens). RFC 9449 §5
 * applies to every grant type: a request with a `DPoP` header gets a token bound to the proof's key (`cnf.jkt`,
 * `token_type: DPoP`), a bad proof is refused, and a client registered with `dpop_bound_access_tokens` must send one.
 * These grants used to ignore the header: their tokens came back `Bearer` whatever the proof said, so their clients
 * could never use a route with `dpop: required`, and a garbage proof passed unnoticed.
 *
 * The steps are oidc-provider's own, those its client_credentials grant runs, so the proof rules (algorithms, `htu`,
 * `iat` window, replay) are one set for every grant.
 */
export interface DpopProof {
  thumbprint: string;
  jti: string;
}

/**
 * Checks the request's proof and uses it up (its replay record), before the assertion is looked at: a replayed
 * proof found only at issuance had already spent the assertion's `jti` and saved a grant with no token behind it.
 * Undefined without a `DPoP` header.
 */
export async function requestDpopProof(provider: Provider, ctx: KoaContextWithOIDC): Promise<DpopProof | undefined> {
  const proof = await validateDpop(provider, ctx);
  checkDpopRequired(provider, ctx, proof);
  const clientId = ctx.oidc.client?.clientId;
  if (proof !== undefined && clientId !== undefined) await checkDpopReplay(provider, ctx, proof, clientId);
  return proof;
}

interface ThumbprintBound {
  setThumbprint(kind: 'jkt', thumbprint: string): void;
}

/** Binds `token` to the proof's key (`cnf.jkt`, `token_type: DPoP`); nothing without a proof. */
export function bindToProof(proof: DpopProof | undefined, token: unknown): void {
  if (proof !== undefined) (token as ThumbprintBound).setThumbprint('jkt', proof.thumbprint);
}
