import { accountRecord, type AccountRecord } from '../records/account.ts';
import { listAll, type AdminDeps } from './admin-deps.ts';
import type { AuditDirectory } from './audit-filter.ts';
import { listClients, type ClientSummary } from './clients.ts';
import { listGrants } from './grants.ts';

/** Who has signed in through Gatehouse (namespace `account`, written at each sign-in), with their grant counts. */
export interface UserSummary extends AccountRecord {
  activeGrants: number;
}

export async function listUsers(deps: AdminDeps): Promise<UserSummary[]> {
  const accounts = await listAll(deps.store, accountRecord);
  const grants = await listGrants(deps);
  const counts = new Map<string, number>();
  for (const grant of grants) counts.set(grant.subject, (counts.get(grant.subject) ?? 0) + 1);
  return accounts
    .map(({ value }) => ({ ...value, activeGrants: counts.get(value.subject) ?? 0 }))
    .sort((a, b) => b.lastSeenAt - a.lastSeenAt);
}

/** Accounts by subject, for showing names next to grants. */
export async function accountsBySubject(deps: AdminDeps): Promise<Map<string, AccountRecord>> {
  const accounts = await listAll(deps.store, accountRecord);
  return new Map(accounts.map(({ value }) => [value.subject, value]));
}

/** Client display names by id (clients without a name are left out). */
export const clientNamesOf = (clients: readonly ClientSummary[]): Map<string, string> =>
  new Map(clients.flatMap((client) => (client.name === undefined ? [] : [[client.clientId, client.name] as const])));

/** Everyone and every app the console can name: what the pages show instead of subjects and client ids. */
export async function consoleDirectory(deps: AdminDeps): Promise<AuditDirectory> {
  const [accounts, clients] = await Promise.all([accountsBySubject(deps), listClients(deps)]);
  return { accounts, clientNames: clientNamesOf(clients) };
}
