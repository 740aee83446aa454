import type { RouteConfig } from '../config/schema.ts';
import type { TokenBroker } from '../broker/types.ts';
import type { EndGrant } from '../grants/end-grant.ts';
import type { GrantEndReason } from '../grants/grant-end-reason.ts';
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
  /** The backend request's `Authorization` value: `Bearer ` and the assertion or the downstream token. */
  authorizationFor(input: {
    route: RouteConfig;
    resource: string;
    challenge: ChallengeTarget;
    claims: AccessTokenClaims;
    account: AccountRecord | undefined;
  }): Promise<string>;
}

export function createIdentityForwarder(options: { signer: Pick<IdentityAssertionSigner, 'assertionFor'>; broker?: TokenBroker; endGrant?: EndGrant }): IdentityForwarder {
  const { signer, broker, endGrant } = options;
  return {
    async authorizationFor({ route, resource, challenge, claims, account }) {
      if (route.identity.mode === 'assertion') {
        return (await signer.assertionFor({ claims, account, audience: resource, ttlSeconds: route.identity.assertionTtlSeconds })).authorization;
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
        return `Bearer ${token.accessToken}`;
      } catch (error) {
        // The upstream IdP wants the user back (Conditional Access step-up, consent revoked, MFA, password change):
        // only a fresh authorization at the gateway, through the IdP, can fix that.
        if (error instanceof ProtocolError && error.code === 'interaction_required') {
          // Why a 401 `invalid_token` and an ended grant: the MCP SDKs (TypeScript v1 and v2) answer a 401, and a 403
          // `insufficient_scope` naming no new scope, by running their auth() again, which *refreshes first* when they
          // hold a refresh token. A refresh would succeed, the retried call meet the same refusal, and the client give
          // up ("401 after successful authentication"). Only a refresh refused with `invalid_grant` makes them drop
          // their tokens and open the browser; ending the grant does that, and makes `invalid_token` literally true.
          const reason = grantEndReasonOf(error);
          if (endGrant !== undefined && reason !== undefined) await endGrant(claims.grantId, reason);
          throw unauthorized(challenge, true, 'The identity provider needs you to sign in again; re-authorize this client.', claims.jkt === undefined ? 'bearer' : 'dpop');
        }
        throw error;
      }
    },
  };
}

/** `upstream_invalid_grant` when the upstream session is gone, `upstream_step_up` when the IdP asks more of the user. */
function grantEndReasonOf(error: ProtocolError): GrantEndReason | undefined {
  const cause = error.cause;
  const reason = typeof cause === 'object' && cause !== null ? (cause as { reason?: unknown }).reason : undefined;
  if (reason === 'refresh_token_invalid' || reason === 'no_upstream_session') return 'upstream_invalid_grant';
  if (reason === 'claims_challenge' || reason === 'interaction_required' || reason === 'consent_required') return 'upstream_step_up';
  return undefined;
}

/** Checked when the gateway starts, so a misconfigured route fails at boot rather than on the first request. */
export function assertForwardingConfigured(routes: readonly RouteConfig[], broker: TokenBroker | undefined): void {
  for (const route of routes) {
    if (route.identity.mode !== 'obo') continue;
    if (!route.identity.downstream) throw new ConfigError([`routes[${route.path}].identity.downstream: identity.mode "obo" needs it`]);
    if (!broker) throw new ConfigError([`routes[${route.path}].identity.mode: "obo" needs the token broker (broker.downstream)`]);
  }
}
