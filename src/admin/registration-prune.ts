import { clientView, listAll, registrationTokenView, type AdminDeps } from './admin-deps.ts';
import { listClients, type ClientSummary } from './clients.ts';
import { endGrant, listGrants } from './grants.ts';
import { appOnlyTokenRecord } from '../records/authorization.ts';
import { deleteRecord, findRecords } from '../store/record-access.ts';

/**
 * Dynamic registrations nobody uses. Anyone may register a client (RFC 7591; bounded per address and hour), and every
 * MCP client that meets the gateway does, often once per install or per sign-in attempt; a registration is kept until
 * deleted. Those no user ever granted anything (an abandoned sign-in, a scanner, a flood within the per-address
 * limit), and those whose every grant has ended, are what `gatehouse clients prune` deletes, with their registration
 * access tokens, once they are older than a window: the store then holds at most a window's worth of registrations
 * besides the clients in use. A client that comes back with a pruned id gets `invalid_client`: the MCP SDKs register
 * again when the token endpoint says it; a sign-in opened with it shows the user a page saying to add the server
 * again (error-page advice for `invalid_client`).
 *
 * In use, and kept: a live grant (a user approved it, and the grant has not ended), or an app-only token (client
 * credentials). Configured and CIMD clients have no registration to delete.
 */
export const DEFAULT_UNUSED_WINDOW_MS = 24 * 3_600_000;

/** DCR clients registered at or before `registeredBefore` (epoch ms) with no live grant and no app-only token. */
export async function unusedRegistrations(deps: AdminDeps, registeredBefore: number): Promise<ClientSummary[]> {
  const unused: ClientSummary[] = [];
  for (const client of await listClients(deps)) {
    if (client.type !== 'dcr' || client.activeGrants > 0 || client.createdAt === undefined || client.createdAt > registeredBefore) continue;
    if (!(await hasAppOnlyToken(deps, client.clientId))) unused.push(client);
  }
  return unused;
}

const hasAppOnlyToken = async (deps: AdminDeps, clientId: string): Promise<boolean> =>
  (await findRecords(deps.store, appOnlyTokenRecord, 'client', clientId, { invalid: 'skip' })).length > 0;

export interface RegistrationPrune {
  /** Registrations deleted (the client ids no longer work). */
  deleted: ClientSummary[];
  /** Listed as unused, but in use by the time their turn came (a grant or an app-only token): kept. */
  keptInUse: string[];
}

/**
 * Deletes the listed registrations that are still unused when their turn comes. A grant made between that check and
 * the delete (a user finishing consent at that moment) is ended after it, as a client's revocation ends one made
 * while it ran: it could not be used past its access token, and would be left listed under a client that no longer
 * exists.
 */
export async function pruneRegistrations(deps: AdminDeps, listed: readonly ClientSummary[]): Promise<RegistrationPrune> {
  const result: RegistrationPrune = { deleted: [], keptInUse: [] };
  if (listed.length === 0) return result;
  // Registration access tokens are stored under their hash with the client id inside (not indexed): one scan for all.
  const tokensOf = new Map<string, string[]>();
  for (const { key, value } of await listAll(deps.store, registrationTokenView)) {
    if (value.clientId === undefined) continue;
    const keys = tokensOf.get(value.clientId);
    if (keys === undefined) tokensOf.set(value.clientId, [key]);
    else keys.push(key);
  }
  const inUse = async (clientId: string) => (await listGrants(deps, { client: clientId })).length > 0 || (await hasAppOnlyToken(deps, clientId));
  for (const client of listed) {
    if (client.type !== 'dcr') continue;
    if (await inUse(client.clientId)) {
      result.keptInUse.push(client.clientId);
      continue;
    }
    for (const key of tokensOf.get(client.clientId) ?? []) await deleteRecord(deps.store, registrationTokenView, key);
    if (!(await deleteRecord(deps.store, clientView, client.clientId))) continue;
    result.deleted.push(client);
    for (const grant of await listGrants(deps, { client: client.clientId })) await endGrant(deps, grant.grantId, 'client_revoked');
  }
  return result;
}
