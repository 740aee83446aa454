import { clientView, grantView, listAll, registrationTokenView, type AdminDeps } from './admin-deps.ts';
import { listClients, type ClientSummary } from './clients.ts';
import { endGrant, forgetSessionsWithoutGrant } from './grants.ts';
import { appOnlyTokenRecord, clientGrantedRecord } from '../records/authorization.ts';
import { deleteRecord, findRecords, readRecord, RecordInvalidError } from '../store/record-access.ts';
import { StoreUnavailableError } from '../store/store.ts';

/**
 * Dynamic registrations nobody uses. Anyone may register a client (RFC 7591; bounded per address and hour), and every
 * MCP client that meets the gateway does, often once per install or per sign-in attempt; a registration is kept until
 * deleted. `gatehouse clients prune` deletes, with their registration access tokens, those older than a window that
 * no user has granted anything lately (an abandoned sign-in, a scanner, a flood within the per-address limit): the
 * store then holds at most a window's worth of unused registrations besides the clients in use. A client that comes
 * back with a pruned id gets `invalid_client`: the MCP SDKs register again when the token endpoint says it; a sign-in
 * opened with it shows the user a page saying to add the server again (error-page advice for `invalid_client`).
 *
 * In use, and kept: a live grant, an app-only token (client credentials), or a grant saved for it within a grant's
 * longest life and a day (`client-granted`, written by the adapter hooks): a client whose only grant ended a minute
 * ago (disconnected on /account) is not taken for one nobody used. Configured and CIMD clients have no registration
 * to delete.
 */
export const DEFAULT_UNUSED_WINDOW_MS = 24 * 3_600_000;

/**
 * The shortest window: a registration younger than that may be in the middle of its first sign-in (an interaction
 * lives half an hour, src/authorization/token-policy.ts), which a prune would cut with "the application is not
 * recognised".
 */
export const MIN_UNUSED_WINDOW_MS = 3_600_000;

/** DCR clients registered at or before `registeredBefore` (epoch ms) that nothing uses (see above). */
export async function unusedRegistrations(deps: AdminDeps, registeredBefore: number): Promise<ClientSummary[]> {
  const unused: ClientSummary[] = [];
  for (const client of await listClients(deps)) {
    if (client.type !== 'dcr' || client.activeGrants > 0 || client.createdAt === undefined || client.createdAt > registeredBefore) continue;
    if (!(await heldOtherwise(deps, client.clientId))) unused.push(client);
  }
  return unused;
}

/** An app-only token of the client's, or a grant saved for it lately (beyond the live grants listClients counts). */
async function heldOtherwise(deps: AdminDeps, clientId: string): Promise<boolean> {
  try {
    if ((await readRecord(deps.store, clientGrantedRecord, clientId)) !== undefined) return true;
  } catch (error) {
    // A record there that cannot be read keeps the registration too: the safe way to be wrong.
    if (error instanceof RecordInvalidError) return true;
    throw error;
  }
  return (await findRecords(deps.store, appOnlyTokenRecord, 'client', clientId, { invalid: 'skip' })).length > 0;
}

export interface RegistrationPrune {
  /** Registrations deleted (the client ids no longer work). */
  deleted: ClientSummary[];
  /** Listed as unused, but in use by the time their turn came (a grant or an app-only token): kept. */
  keptInUse: string[];
  /** Grants saved for a deleted client while it was being deleted, ended (by their grant ids). */
  endedGrants: string[];
  /** Why the run stopped before the end of the list (the store became unavailable); what is above was done. */
  stopped?: string;
}

/**
 * Deletes the listed registrations that are still unused when their turn comes: the client record first (the id
 * stops working), then its registration access tokens. Then the grants of the deleted clients are looked for once
 * among every grant (a replica of a previous version writes grants without the client index): one saved between the
 * check and the delete (a user finishing consent at that moment) is ended, as a client's revocation ends one made
 * while it ran. The store failing part-way stops the run with what was done so far said.
 */
export async function pruneRegistrations(deps: AdminDeps, listed: readonly ClientSummary[]): Promise<RegistrationPrune> {
  const result: RegistrationPrune = { deleted: [], keptInUse: [], endedGrants: [] };
  if (listed.length === 0) return result;
  try {
    // Registration access tokens are stored under their hash with the client id inside (not indexed): one scan for all.
    const tokensOf = new Map<string, string[]>();
    for (const { key, value } of await listAll(deps.store, registrationTokenView)) {
      if (value.clientId === undefined) continue;
      const keys = tokensOf.get(value.clientId);
      if (keys === undefined) tokensOf.set(value.clientId, [key]);
      else keys.push(key);
    }
    for (const client of listed) {
      if (client.type !== 'dcr') continue;
      if ((await findRecords(deps.store, grantView, 'clientId', client.clientId)).length > 0 || (await heldOtherwise(deps, client.clientId))) {
        result.keptInUse.push(client.clientId);
        continue;
      }
      if (!(await deleteRecord(deps.store, clientView, client.clientId))) continue;
      result.deleted.push(client);
      for (const key of tokensOf.get(client.clientId) ?? []) await deleteRecord(deps.store, registrationTokenView, key);
    }
    const deleted = new Set(result.deleted.map((client) => client.clientId));
    const subjects = new Set<string>();
    for (const { key, value } of deleted.size === 0 ? [] : await listAll(deps.store, grantView)) {
      if (value.clientId === undefined || !deleted.has(value.clientId)) continue;
      if (await endGrant(deps, key, 'client_revoked')) result.endedGrants.push(key);
      if (value.accountId !== undefined) subjects.add(value.accountId);
    }
    // A user left without any grant by that has no upstream tokens to keep (as after a client's revocation).
    await forgetSessionsWithoutGrant(deps, subjects);
  } catch (error) {
    if (!(error instanceof StoreUnavailableError)) throw error;
    // Its first line, as the CLI says any store failure (store messages name the endpoint, never a credential).
    result.stopped = error.message.split('\n')[0];
  }
  return result;
}
