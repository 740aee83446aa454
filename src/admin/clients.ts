import { isClientIdUrl } from '../authorization/client-metadata-policy.ts';
import {
  AdminNotFoundError,
  clientView,
  fromEpochSeconds,
  listAll,
  registrationTokenView,
  type AdminDeps,
} from './admin-deps.ts';
import { deleteRecord, findRecords, readRecord } from '../store/record-access.ts';
import { appOnlyTokenRecord } from '../records/authorization.ts';
import { endGrant, forgetSessionsWithoutGrant, listGrants, type GrantSummary, type RecentUse } from './grants.ts';
import { withdrawConsent } from '../authorization/remembered-decisions.ts';

/**
 * MCP clients, from the three places they come from:
 * - `pre-registered`: `authorization.clients` in the config (cannot be deleted from here: edit the config);
 * - `dcr`: RFC 7591 dynamic registrations, stored by oidc-provider (namespace `oidc:Client`);
 * - `cimd`: URL client ids (Client ID Metadata Documents). The provider caches their documents in memory only, so
 *   the store knows a CIMD client by its grants; its "registration" is the URL and cannot be deleted either —
 *   `authorization.clientMetadataDocuments.denyDomains` blocks one for good.
 */
export type ClientType = 'pre-registered' | 'dcr' | 'cimd';

export interface ClientSummary {
  clientId: string;
  name?: string;
  type: ClientType;
  /** Hosts of the registered redirect URIs (what a user should recognise). */
  redirectHosts: string[];
  redirectUris: string[];
  /** Epoch ms: registration time (DCR) or first grant (CIMD); unknown for configured clients. */
  createdAt?: number;
  lastUsedAt?: number;
  activeGrants: number;
}

/** Where a client's redirects go: the host, or for a native app's private-use scheme (RFC 8252 §7.1) the scheme. */
const hostsOf = (uris: string[]): string[] =>
  [...new Set(uris.flatMap((uri) => {
    const url = URL.parse(uri);
    return url === null ? [] : url.host !== '' ? [url.host] : [url.protocol];
  }))].sort();

function withGrantActivity(client: Omit<ClientSummary, 'activeGrants' | 'lastUsedAt'>, grantsByClient: ReadonlyMap<string, GrantSummary[]>): ClientSummary {
  const mine = grantsByClient.get(client.clientId) ?? [];
  const used = mine.flatMap((grant) => (grant.lastUsedAt === undefined ? [] : [grant.lastUsedAt]));
  const created = mine.flatMap((grant) => (grant.createdAt === undefined ? [] : [grant.createdAt]));
  const createdAt = client.createdAt ?? (client.type === 'cimd' && created.length > 0 ? Math.min(...created) : undefined);
  return {
    ...client,
    ...(createdAt === undefined ? {} : { createdAt }),
    ...(used.length === 0 ? {} : { lastUsedAt: Math.max(...used) }),
    activeGrants: mine.length,
  };
}

export async function listClients(deps: AdminDeps, recentUse?: RecentUse): Promise<ClientSummary[]> {
  const grants = await listGrants(deps, {}, recentUse);
  const clients: Omit<ClientSummary, 'activeGrants' | 'lastUsedAt'>[] = [];
  const known = new Set<string>();

  for (const configured of deps.config.authorization.clients) {
    known.add(configured.clientId);
    clients.push({
      clientId: configured.clientId,
      ...(configured.name === undefined ? {} : { name: configured.name }),
      type: 'pre-registered',
      redirectUris: configured.redirectUris,
      redirectHosts: hostsOf(configured.redirectUris),
    });
  }
  for (const { key, value } of await listAll(deps.store, clientView)) {
    if (known.has(key)) continue;
    known.add(key);
    const createdAt = fromEpochSeconds(value.client_id_issued_at);
    const redirectUris = value.redirect_uris ?? [];
    clients.push({
      clientId: key,
      ...(value.client_name === undefined ? {} : { name: value.client_name }),
      type: 'dcr',
      redirectUris,
      redirectHosts: hostsOf(redirectUris),
      ...(createdAt === undefined ? {} : { createdAt }),
    });
  }
  for (const grant of grants) {
    if (known.has(grant.clientId) || !isClientIdUrl(grant.clientId)) continue;
    known.add(grant.clientId);
    // The document's own name is in the provider's memory only; its host is what the consent page showed as the id.
    clients.push({ clientId: grant.clientId, type: 'cimd', redirectUris: [], redirectHosts: hostsOf([grant.clientId]) });
  }
  // Grouped once: every client scanning every grant grew with their product, and anyone may register clients.
  const grantsByClient = new Map<string, GrantSummary[]>();
  for (const grant of grants) {
    const list = grantsByClient.get(grant.clientId);
    if (list === undefined) grantsByClient.set(grant.clientId, [grant]);
    else list.push(grant);
  }
  return clients
    .map((client) => withGrantActivity(client, grantsByClient))
    .sort((a, b) => usageRank(a) - usageRank(b) || (b.lastUsedAt ?? b.createdAt ?? 0) - (a.lastUsedAt ?? a.createdAt ?? 0) || a.clientId.localeCompare(b.clientId));
}

/**
 * Used clients first, then ones with a grant, the configured ones, and last registrations nobody used. Sorted by
 * "used or else created" alone, a stream of registrations (anyone may register) pushed every client in use off the
 * console's first 200 rows, where an admin looks for them.
 */
function usageRank(client: ClientSummary): number {
  if (client.lastUsedAt !== undefined) return 0;
  if (client.activeGrants > 0) return 1;
  return client.type === 'pre-registered' ? 2 : 3;
}

export async function findClient(deps: AdminDeps, clientId: string): Promise<ClientSummary | undefined> {
  const clients = await listClients(deps);
  return clients.find((client) => client.clientId === clientId);
}

export interface ClientRevocation {
  client: ClientSummary;
  /** The grants this revocation ended (not those that something else ended while it ran). */
  revokedGrants: string[];
  /** The app-only tokens (client credentials, workload tokens) it ended, by their grant ids: they have no grant. */
  revokedAppOnlyTokens: string[];
  /** True when a DCR registration was deleted; configured and CIMD clients keep theirs (see the note above). */
  registrationDeleted: boolean;
}

/**
 * Ends every grant of the client (each refused on every replica at once, like a single grant revocation) and
 * deletes its dynamic registration with its registration access tokens, so the client id stops working.
 */
export async function revokeClient(deps: AdminDeps, clientId: string): Promise<ClientRevocation> {
  const client = await findClient(deps, clientId);
  if (client === undefined) throw new AdminNotFoundError(`no client ${JSON.stringify(clientId)}`);
  const revokedGrants: string[] = [];
  const revokedAppOnlyTokens: string[] = [];
  const subjects = new Set<string>();
  const endGrants = async () => {
    for (const grant of await listGrants(deps, { client: clientId }, undefined, { everyGrant: true })) {
      // A configured or CIMD client keeps its registration: without this, a browser's remembered approval let it
      // re-authorize at once, undoing the operator's decision without a page (remembered-decisions.ts).
      await withdrawConsent(deps.store, grant.subject, clientId, deps.clock.now(), deps.config.authorization.consentRememberDays);
      // One ended meanwhile by someone else (its user, a second revocation of the client) is theirs to count.
      if (await endGrant(deps, grant.grantId, 'client_revoked')) revokedGrants.push(grant.grantId);
      subjects.add(grant.subject);
    }
    // No grant record lists these: each was recorded under its client as it was minted (grants/client-credentials.ts).
    for (const { key } of await findRecords(deps.store, appOnlyTokenRecord, 'client', clientId, { invalid: 'skip' })) {
      if (await endGrant(deps, key, 'client_revoked')) revokedAppOnlyTokens.push(key);
    }
  };
  await endGrants();

  let registrationDeleted = false;
  if (client.type === 'dcr') {
    // Registration tokens are stored under their hash with the client id inside (not indexed): scan for them.
    for (const { key, value } of await listAll(deps.store, registrationTokenView)) {
      if (value.clientId === clientId) await deleteRecord(deps.store, registrationTokenView, key);
    }
    registrationDeleted = await deleteRecord(deps.store, clientView, clientId);
    // A grant made while the ones above were ending (a user finishing consent meanwhile) was not in that list; with
    // the registration gone no further one can be made, so a second pass ends them all.
    await endGrants();
  }
  // Once for all the users whose grants ended: one read of the grants, not one per user.
  await forgetSessionsWithoutGrant(deps, subjects);
  return { client, revokedGrants, revokedAppOnlyTokens, registrationDeleted };
}

export interface ClientDescription {
  name?: string;
  hosts: string[];
}

/** Name and recognisable hosts of one client, without listing every client (for the connected-apps page). */
export async function describeClient(deps: AdminDeps, clientId: string): Promise<ClientDescription> {
  const configured = deps.config.authorization.clients.find((client) => client.clientId === clientId);
  if (configured !== undefined) {
    return { ...(configured.name === undefined ? {} : { name: configured.name }), hosts: hostsOf(configured.redirectUris) };
  }
  if (isClientIdUrl(clientId)) return { hosts: hostsOf([clientId]) };
  const stored = await readRecord(deps.store, clientView, clientId);
  return { ...(stored?.client_name === undefined ? {} : { name: stored.client_name }), hosts: hostsOf(stored?.redirect_uris ?? []) };
}
