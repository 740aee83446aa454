import { isAppOnlyGrantId } from '../protocol/app-only.ts';
import type { Clock } from '../runtime/clock.ts';
import { appOnlyTokenRecord } from '../records/authorization.ts';
import { GRANT_BOUND_MODELS, oidcRecords } from '../store/oidc-records.ts';
import { deleteRecord, deleteRecords, readRecord } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';
import type { GrantEndReason } from './grant-end-reason.ts';
import { revokeGrant, settleRevocation } from './revoked-grants.ts';

/**
 * The one way to end a grant. Code replay, refresh-token reuse, RFC 7009 revocation, logout, the admin console and
 * CLI, /account, client revocation and an upstream `invalid_grant` all call it, so a grant can never end "partly"
 * (e.g. its record deleted while the access tokens it minted stay valid at the gateway, which is what a raw
 * `store.delete` of the grant did on a concurrent code replay).
 *
 * Order matters: the revocation record and its pub/sub message come first, so if a later step fails the grant's
 * self-contained access tokens are already refused on every replica; then the grant's codes and refresh tokens go,
 * then the grant itself. Every step is idempotent, so ending an ended grant (or two paths racing to end the same
 * grant) is harmless; concurrent calls for one grant in this process share one run.
 *
 * Resolves to whether this call removed the grant's record: of two people (or replicas) ending one grant at once,
 * exactly one is told it ended it — the store's delete decides — so it is logged, counted and reported once.
 *
 * @see RFC 7009 §2.2, RFC 6749 §4.1.2, RFC 9700 §4.14.2
 */
export type EndGrant = (grantId: string, reason: GrantEndReason) => Promise<boolean>;

/**
 * A grant this replica ended, with whose it was, read from its record as it ended (the record is gone after): the
 * audit record of the ending names the user, the client and the MCP servers it was for. Never a token.
 */
export interface EndedGrant {
  grantId: string;
  reason: GrantEndReason;
  user?: string;
  client?: string;
  /** The resources (RFC 8707) the grant was for; none for an app-only token. */
  resources: string[];
}

export interface EndGrantOptions {
  store: Store;
  clock: Clock;
  /** Longest access-token lifetime, seconds: the revocation record must outlive every token of the grant. */
  accessTokenTtlSeconds: number;
  /**
   * The longest a grant lives (`authorization.refreshTokenAbsoluteSeconds`): how long the revocation record lives
   * while the grant's records may still be in the store (an ending the store interrupted part-way).
   */
  grantLifetimeSeconds: number;
  /** Told once per ended grant, by the call that removed its record (the log line and the audit record). Must not throw. */
  onEnded?: (ended: EndedGrant) => void;
}

/** Clock skew on top of the token lifetime: a token minted a moment before revocation must still be refused. */
const REVOCATION_SKEW_SECONDS = 60;

export function revocationTtlSeconds(accessTokenTtlSeconds: number): number {
  return accessTokenTtlSeconds + REVOCATION_SKEW_SECONDS;
}

export function createEndGrant(options: EndGrantOptions): EndGrant {
  const { store, clock, accessTokenTtlSeconds, grantLifetimeSeconds, onEnded } = options;
  const inFlight = new Map<string, Promise<boolean>>();
  const settledTtl = revocationTtlSeconds(accessTokenTtlSeconds);

  async function run(grantId: string, reason: GrantEndReason): Promise<boolean> {
    // The record first lives as long as the grant could: a store failing after it (a lost reply, an outage) left the
    // grant and its refresh tokens behind, and once a record living only as long as the access tokens had expired,
    // those refresh tokens minted working tokens again — a reused refresh token's theft signal undone, unlogged,
    // when the client did not retry. The grant's records are refused while it exists (adapter-hooks.ts), and any
    // later ending finishes the deletes; only then is its life cut to the access tokens'.
    const firstRevocation = await revokeGrant(store, grantId, { ttlSeconds: Math.max(settledTtl, grantLifetimeSeconds), clock, reason });
    for (const model of GRANT_BOUND_MODELS) await deleteRecords(store, oidcRecords[model], 'grantId', grantId);
    // Read before the record goes; a failed read costs the audit record its names, never the ending.
    const whose = onEnded === undefined ? undefined : await grantOwner(store, grantId).catch(() => undefined);
    // An app-only token's grant id names no record (src/protocol/app-only.ts): the first revocation record is its end.
    const ended = (await deleteRecord(store, oidcRecords.Grant, grantId)) || (isAppOnlyGrantId(grantId) && firstRevocation);
    // Not needed for the grant to stay ended (a longer record only refuses longer): a store failing now does not
    // make the ending fail, which the caller would report as not done.
    await settleRevocation(store, grantId, settledTtl).catch(() => undefined);
    if (ended) onEnded?.({ grantId, reason, resources: [], ...whose });
    return ended;
  }

  return (grantId, reason) => {
    const running = inFlight.get(grantId);
    // A call that joins a run under way did not end the grant itself: the run's caller is told it did.
    if (running !== undefined) return running.then(() => false);
    const ending = run(grantId, reason).finally(() => inFlight.delete(grantId));
    inFlight.set(grantId, ending);
    return ending;
  };
}

/** Whose grant it is: the grant record's user, client and resources, or the app-only token's client. */
async function grantOwner(store: Store, grantId: string): Promise<Omit<EndedGrant, 'grantId' | 'reason'> | undefined> {
  if (isAppOnlyGrantId(grantId)) {
    const token = await readRecord(store, appOnlyTokenRecord, grantId, { invalid: 'absent' });
    return token === undefined ? undefined : { client: token.clientId, resources: token.resource === undefined ? [] : [token.resource] };
  }
  const grant = await readRecord(store, oidcRecords.Grant, grantId, { invalid: 'absent' });
  if (grant === undefined) return undefined;
  const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);
  const user = text(grant.accountId);
  const client = text(grant.clientId);
  const resources = grant.resources !== null && typeof grant.resources === 'object' ? Object.keys(grant.resources) : [];
  return { ...(user === undefined ? {} : { user }), ...(client === undefined ? {} : { client }), resources };
}
