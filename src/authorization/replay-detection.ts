import { createHash } from 'node:crypto';
import type Provider from 'oidc-provider';
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
  model.unique = (iss, jti, exp) => {
    // A separator, so `iss` + `jti` cannot be split two ways (oidc-provider concatenates them as they are).
    const id = createHash('sha256').update(`${iss}\n${jti}`).digest('base64url');
    const ttlSeconds = Math.max(1, Math.ceil(exp - seconds(clock.now())));
    return providerFacing(createRecord(store, record, id, { iss, jti: id, exp }, { ttlSeconds }));
  };
}
