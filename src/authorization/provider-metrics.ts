import type Provider from 'oidc-provider';
import type { AuthorizationMetrics } from './authorization-metrics.ts';
import { TOKEN_EXCHANGE_GRANT } from '../protocol/oauth-urns.ts';
import { GrantAlreadyConsumedError } from '../store/oidc-adapter.ts';

/**
 * Token issuance, refresh and grant revocation of the authorization server, counted from oidc-provider's events
 * (`<model>.saved|issued`, `grant.success`, `grant.error`, `grant.revoked`).
 *
 * | event                                            | counts                                                  |
 * |--------------------------------------------------|---------------------------------------------------------|
 * | access_token / client_credentials .issued|.saved | tokenIssued('access_token') (JWT tokens are `issued`)   |
 * | refresh_token.saved, authorization_code.saved    | tokenIssued('refresh_token' / 'authorization_code')     |
 * | grant.success                                    | id_token in the body; refresh → 'rotated'; RFC 8693     |
 * | grant.revoked on /token                          | sequential replay: 'replay', or 'reuse_detected' +      |
 * |                                                  | 'refresh_reuse' for a refresh token                     |
 * | grant.revoked on /revoke, /session/end           | grantRevoked('client' / 'user')                         |
 * | grant.error for grant_type=refresh_token         | tokenRefreshed('failed'), unless it was reuse           |
 *
 * Two parties redeeming the same code or refresh token at the same moment is caught by the store adapter instead
 * (oidc-provider never sees the record as consumed); adapter-hooks.ts reports it through `replayRecorder`. Refresh
 * outcomes are exclusive: every refresh request counts once as rotated, reuse_detected or failed.
 *
 * Listeners never throw: an exception in one would surface in the request that emitted the event.
 */
export function recordProviderMetrics(provider: Provider, metrics: AuthorizationMetrics): void {
  // Requests in which the provider revoked a grant for reuse; their `grant.error` is not a plain failed refresh.
  const revokedForReuse = new WeakSet<object>();

  for (const model of ['access_token', 'client_credentials']) {
    provider.on(`${model}.issued`, () => metrics.tokenIssued('access_token'));
    provider.on(`${model}.saved`, () => metrics.tokenIssued('access_token'));
  }
  provider.on('refresh_token.saved', () => metrics.tokenIssued('refresh_token'));
  provider.on('authorization_code.saved', () => metrics.tokenIssued('authorization_code'));

  provider.on('grant.success', (ctx: unknown) => {
    const { grantType, body } = describe(ctx);
    if (typeof body?.id_token === 'string') metrics.tokenIssued('id_token');
    // Every refresh rotates (token-policy.ts), so a successful refresh grant is a rotation.
    if (grantType === 'refresh_token') metrics.tokenRefreshed('rotated');
    if (grantType === TOKEN_EXCHANGE_GRANT) metrics.tokenIssued('token_exchange');
  });

  provider.on('grant.revoked', (ctx: unknown) => {
    const { route, grantType } = describe(ctx);
    if (route === 'token') {
      // @see RFC 6749 §4.1.2 (code replay), RFC 9700 §4.14.2 (refresh token reuse): the only revocations /token makes.
      if (typeof ctx === 'object' && ctx !== null) revokedForReuse.add(ctx);
      if (grantType === 'refresh_token') {
        metrics.tokenRefreshed('reuse_detected');
        metrics.grantRevoked('refresh_reuse');
      } else {
        metrics.grantRevoked('replay');
      }
    } else if (route === 'end_session') {
      metrics.grantRevoked('user');
    } else {
      // @see RFC 7009 — the client revoked its refresh token, which ends the grant.
      metrics.grantRevoked('client');
    }
  });

  provider.on('grant.error', (ctx: unknown, error: unknown) => {
    if (describe(ctx).grantType !== 'refresh_token') return;
    if (error instanceof GrantAlreadyConsumedError) return; // counted as reuse by replayRecorder
    if (typeof ctx === 'object' && ctx !== null && revokedForReuse.has(ctx)) return;
    metrics.tokenRefreshed('failed');
  });
}

/**
 * What to count when the store adapter catches a code or refresh token redeemed twice at once (it revokes the grant
 * before refusing the second redemption); pass it as `onReplayDetected` to `withAuthorizationHooks`.
 */
export function replayRecorder(metrics: AuthorizationMetrics): (model: 'AuthorizationCode' | 'RefreshToken') => void {
  return (model) => {
    if (model === 'RefreshToken') {
      metrics.tokenRefreshed('reuse_detected');
      metrics.grantRevoked('refresh_reuse');
    } else {
      metrics.grantRevoked('replay');
    }
  };
}

/** The few fields of oidc-provider's Koa context the listeners read, without trusting its shape. */
function describe(ctx: unknown): { route?: string; grantType?: string; body?: Record<string, unknown> } {
  if (typeof ctx !== 'object' || ctx === null) return {};
  const { oidc, body } = ctx as { oidc?: { route?: unknown; params?: { grant_type?: unknown } }; body?: unknown };
  return {
    route: typeof oidc?.route === 'string' ? oidc.route : undefined,
    grantType: typeof oidc?.params?.grant_type === 'string' ? oidc.params.grant_type : undefined,
    body: typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : undefined,
  };
}
