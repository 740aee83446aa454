/**
 * What the authorization server reports (src/observability/metrics.ts implements it), counted from oidc-provider's
 * events (provider-metrics.ts): tokens issued, refresh outcomes, grants ended, and refused registrations.
 */
export interface AuthorizationMetrics {
  tokenIssued(kind: 'access_token' | 'refresh_token' | 'authorization_code' | 'id_token' | 'token_exchange'): void;
  tokenRefreshed(outcome: 'rotated' | 'reuse_detected' | 'failed'): void;
  grantRevoked(source: 'user' | 'admin' | 'client' | 'replay' | 'refresh_reuse'): void;
}
