/**
 * DPoP (RFC 9449) as both halves of Gatehouse speak it: the authorization server accepts proofs signed with these
 * algorithms at its token endpoint (and advertises them as `dpop_signing_alg_values_supported`), the gateway accepts
 * the same ones on every protected request (and names them in its `DPoP algs="…"` challenge). One list, so the
 * metadata never advertises an algorithm the gateway would refuse.
 *
 * Asymmetric only (RFC 9449 §4.2: "MUST NOT be none or an identifier for a symmetric algorithm"): a proof proves
 * possession of a private key whose public half travels in the proof's `jwk` header.
 */
export const DPOP_SIGNING_ALGS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'Ed25519', 'EdDSA'] as const;

/** RFC 9449 §4.2: the `typ` of a proof. */
export const DPOP_PROOF_TYPE = 'dpop+jwt';
