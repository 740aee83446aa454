import { SignJWT, createLocalJWKSet, createRemoteJWKSet, decodeJwt, jwtVerify, type CryptoKey, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import type { Clock } from '../../runtime/clock.ts';
import type { Random } from '../../runtime/random.ts';
import { entraError, type EntraErrorBody } from './entra-errors.ts';

/**
 * DEVELOPMENT ONLY — a federated identity credential, as on an Entra app registration: the app trusts JWTs from one
 * external issuer, for one subject and audience, in place of a secret. oidc-provider only knows `private_key_jwt`
 * (assertions the client signs itself, `iss` = `sub` = client id), so this bridge verifies the external assertion
 * and hands oidc-provider an equivalent `private_key_jwt` assertion signed with a key only the IdP holds and the
 * gateway client's registration trusts. A client secret is never accepted: the client has none.
 */
export interface FederatedTrust {
  issuer: string;
  subject: string;
  audience: string;
}

export type BridgeOutcome = { ok: true } | { ok: false; status: number; body: EntraErrorBody };

const discoverySchema = z.object({ issuer: z.string(), jwks_uri: z.url() });

export function createFederatedCredentialBridge(deps: {
  trust: FederatedTrust;
  clientId: string;
  bridgeKey: CryptoKey;
  bridgeKid: string;
  /** `aud` for the bridged assertion: the IdP's issuer (oidc-provider accepts it for client authentication). */
  providerIssuer: () => string;
  clock: Clock;
  random: Random;
  fetch?: typeof globalThis.fetch;
  /** The issuer's keys when it runs in this process (the demo mounts it on the IdP); otherwise discovered. */
  issuerJwks?: JSONWebKeySet;
}) {
  const fetch = deps.fetch ?? globalThis.fetch;
  let jwks: JWTVerifyGetKey | undefined = deps.issuerJwks ? createLocalJWKSet(deps.issuerJwks) : undefined;

  async function issuerKeys(): Promise<JWTVerifyGetKey> {
    if (jwks) return jwks;
    const response = await fetch(`${deps.trust.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, {
      signal: AbortSignal.timeout(5_000),
    });
    const metadata = discoverySchema.parse(await response.json());
    if (metadata.issuer !== deps.trust.issuer) throw new Error('workload issuer discovery names another issuer');
    jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
    return jwks;
  }

  const refuse = (): BridgeOutcome => ({ ok: false, status: 401, body: entraError('invalid_client', 70021, { now: deps.clock.now() }) });

  return {
    /** True when the request authenticates with an assertion from the trusted external issuer. */
    appliesTo(params: URLSearchParams): boolean {
      const assertion = params.get('client_assertion');
      if (!assertion) return false;
      try {
        return decodeJwt(assertion).iss === deps.trust.issuer;
      } catch {
        return false;
      }
    },

    /** Verifies issuer, subject, audience, signature and expiry, then swaps in the bridged assertion. */
    async bridge(params: URLSearchParams): Promise<BridgeOutcome> {
      const assertion = params.get('client_assertion') ?? '';
      const clientId = params.get('client_id');
      if (clientId !== null && clientId !== deps.clientId) return refuse();
      try {
        await jwtVerify(assertion, await issuerKeys(), {
          issuer: deps.trust.issuer,
          subject: deps.trust.subject,
          audience: deps.trust.audience,
          currentDate: new Date(deps.clock.now()),
        });
      } catch {
        return refuse();
      }
      const now = Math.floor(deps.clock.now() / 1000);
      const bridged = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: deps.bridgeKid })
        .setIssuer(deps.clientId)
        .setSubject(deps.clientId)
        .setAudience(deps.providerIssuer())
        .setJti(deps.random.token(16))
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .sign(deps.bridgeKey);
      params.set('client_assertion', bridged);
      params.set('client_id', deps.clientId);
      return { ok: true };
    },
  };
}
