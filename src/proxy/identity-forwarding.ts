import type { RouteConfig } from '../config/schema.ts';
import type { TokenBroker } from '../broker/types.ts';
import type { EndGrant } from '../grants/end-grant.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { AccountRecord } from './account-cache.ts';
import { unauthorized, type ChallengeTarget } from '../errors/bearer-challenge.ts';
import type { IdentityAssertionSigner } from './identity-assertion.ts';
import type { AccessTokenClaims } from './verify-access-token.ts';
import { ConfigError } from '../config/config-error.ts';

/**
 * What the backend receives in `Authorization`: never the client's token (the MCP spec forbids token passthrough),
 * but either a gateway-signed identity assertion or, in `obo` mode, a downstream token the broker obtained on behalf
 * of the user (e.g. for Microsoft Graph), so a backend that only calls that API needs no OAuth code at all.
 */
export interface IdentityForwarder {
  credentialFor(input: {
    route: RouteConfig;
    resource: string;
    challenge: ChallengeTarget;
    claims: AccessTokenClaims;
    account: AccountRecord | undefined;
  }): Promise<string>;
}

export function createIdentityForwarder(options: { signer: IdentityAssertionSigner; broker?: TokenBroker; endGrant?: EndGrant }): IdentityForwarder {
  const { signer, broker, endGrant } = options;
  return {
    async credentialFor({ route, resource, challenge, claims, account }) {
      if (route.identity.mode === 'assertion') {
        return signer.assertionFor({ claims, account, audience: resource, ttlSeconds: route.identity.assertionTtlSeconds });
      }
      if (claims.appOnly === true) {
        // On-behalf-of needs a user whose upstream session the broker acts for; an app-only caller has none, and no
        // re-authorization can give it one: a plain 403, not a challenge.
        throw new ProtocolError('access_denied', `Route ${route.path} calls its downstream API on behalf of a signed-in user; an app-only caller (client credentials or a workload) has no user to act for.`);
      }
      if (!broker || !route.identity.downstream) {
        throw new ProtocolError('server_error', `Route ${route.path} forwards downstream tokens but no broker is configured.`);
      }
      try {
        const token = await broker.getDownstreamToken({ user: { subject: claims.sub }, downstream: route.identity.downstream });
        return token.accessToken;
      } catch (error) {
        // The upstream IdP wants the user back (consent revoked, MFA, password change): only a fresh authorization
        // at the gateway can fix that, so the client gets a 401 challenge that makes it start one.
        if (error instanceof ProtocolError && error.code === 'interaction_required') {
          // The IdP refused the user's refresh token: the upstream session behind this grant is gone for good, so the
          // grant ends too (its refresh token would only mint more tokens that fail here); the client starts over.
          if (endGrant !== undefined && upstreamSessionEnded(error)) await endGrant(claims.grantId, 'upstream_invalid_grant');
          throw unauthorized(challenge, true, 'The identity provider needs you to sign in again; re-authorize this client.');
        }
        throw error;
      }
    },
  };
}

function upstreamSessionEnded(error: ProtocolError): boolean {
  const cause = error.cause;
  return typeof cause === 'object' && cause !== null && (cause as { reason?: unknown }).reason === 'refresh_token_invalid';
}

/** Checked when the gateway starts, so a misconfigured route fails at boot rather than on the first request. */
export function assertForwardingConfigured(routes: readonly RouteConfig[], broker: TokenBroker | undefined): void {
  for (const route of routes) {
    if (route.identity.mode !== 'obo') continue;
    if (!route.identity.downstream) throw new ConfigError([`routes[${route.path}].identity.downstream: identity.mode "obo" needs it`]);
    if (!broker) throw new ConfigError([`routes[${route.path}].identity.mode: "obo" needs the token broker (broker.downstream)`]);
  }
}
