import type { UpstreamIdentity } from '../upstream/types.ts';

/**
 * The token broker as the gateway and backends see it: a downstream token for a user and a configured downstream API
 * (`broker.downstream[].name`), from cache when fresh, otherwise by on-behalf-of / RFC 8693 exchange of the user's
 * sealed upstream token (refreshed single-flight across replicas when expired).
 */
export interface DownstreamToken {
  accessToken: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Epoch ms: when it was obtained, if known (a token's lifetime, for how early it is renewed). */
  obtainedAt?: number;
  scopes: string[];
}

export interface TokenBroker {
  /** Throws ProtocolError: `interaction_required` (re-authorize), `invalid_target` (not allowed), `temporarily_unavailable`. */
  getDownstreamToken(input: { user: Pick<UpstreamIdentity, 'subject'>; downstream: string }): Promise<DownstreamToken>;
}
