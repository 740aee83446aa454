import { createEndGrant, revocationTtlSeconds as revocationTtlFor } from '../grants/end-grant.ts';
import type { GrantEndReason } from '../grants/grant-end-reason.ts';
import {
  AdminNotFoundError,
  fromEpochSeconds,
  grantView,
  listAll,
  refreshTokenView,
  type AdminDeps,
} from './admin-deps.ts';
import { findRecords, readRecord } from '../store/record-access.ts';
import type { z } from 'zod';
import { ProtocolError } from '../errors/protocol-error.ts';
import { withdrawConsent } from '../authorization/remembered-decisions.ts';
import { deleteUpstreamTokens } from '../upstream/token-vault.ts';
import { forgetDownstreamTokens } from '../records/downstream-tokens.ts';
import { usersWithoutGrant } from '../grants/user-grants.ts';

/**
 * Grants: what a user approved for a client (oidc-provider's Grant model, namespace `oidc:Grant`, key = grant id).
 * Revoking one ends every token it issued on every replica through `endGrant` (src/grants/end-grant.ts): the grant id
 * is recorded as revoked and published, so the proxy refuses the grant's self-contained access tokens (JWTs, not
 * stored anywhere) within a second with Redis, at the next re-sync with SQLite; its codes and refresh tokens go.
 *
 * @see RFC 7009 §2.2 (revoking a grant invalidates its other tokens)
 */

/** The fields of oidc-provider's stored Grant this module reads. */
export type StoredGrant = z.infer<typeof grantView.schema>;

export interface GrantSummary {
  grantId: string;
  subject: string;
  clientId: string;
  /** Every scope granted, OIDC and resource scopes together, sorted. */
  scopes: string[];
  /** Resource indicators (MCP route URLs) the grant covers. */
  resources: string[];
  /** The scopes granted for each resource (RFC 8707), as the consent page listed them. */
  resourceScopes: Record<string, string[]>;
  /** Epoch ms. */
  createdAt?: number;
  expiresAt?: number;
  /** Epoch ms of the last token issued from this grant (refresh), or of the last audited request if later. */
  lastUsedAt?: number;
}

export interface GrantFilter {
  user?: string;
  client?: string;
}

/** Grant ids are provider-generated url-safe strings; anything else cannot name a grant. */
const GRANT_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function summarizeGrant(grantId: string, stored: StoredGrant, lastUsedAt?: number): GrantSummary {
  const scopes = new Set<string>();
  for (const scope of (stored.openid?.scope ?? '').split(' ')) if (scope) scopes.add(scope);
  for (const value of Object.values(stored.resources ?? {})) for (const scope of value.split(' ')) if (scope) scopes.add(scope);
  const createdAt = fromEpochSeconds(stored.iat);
  const expiresAt = fromEpochSeconds(stored.exp);
  return {
    grantId,
    subject: stored.accountId ?? '',
    clientId: stored.clientId ?? '',
    scopes: [...scopes].sort(),
    resources: Object.keys(stored.resources ?? {}).sort(),
    resourceScopes: Object.fromEntries(Object.entries(stored.resources ?? {}).map(([resource, value]) => [resource, value.split(' ').filter((scope) => scope !== '')])),
    ...(createdAt === undefined ? {} : { createdAt }),
    ...(expiresAt === undefined ? {} : { expiresAt }),
    ...(lastUsedAt === undefined ? {} : { lastUsedAt }),
  };
}

/** The latest `iat` of the grant's refresh tokens (each refresh writes a new one): when a client last got a token. */
async function lastTokenIssuedAt(deps: AdminDeps, grantId: string): Promise<number | undefined> {
  const tokens = await findRecords(deps.store, refreshTokenView, 'grantId', grantId);
  const times = tokens.flatMap((entry) => {
    const at = fromEpochSeconds(entry.value.iat);
    return at === undefined ? [] : [at];
  });
  return times.length === 0 ? undefined : Math.max(...times);
}

/** Latest known use per `subject \0 clientId`, e.g. from recent audit records; merged into `lastUsedAt`. */
export type RecentUse = ReadonlyMap<string, number>;
export const recentUseKey = (subject: string, clientId: string): string => `${subject}\u0000${clientId}`;

export async function listGrants(
  deps: AdminDeps,
  filter: GrantFilter = {},
  recentUse?: RecentUse,
  options: { everyGrant?: boolean } = {},
): Promise<GrantSummary[]> {
  // A user's or a client's grants by index (a user's page must not read every user's grants); all of them otherwise,
  // and for `everyGrant`: where a grant missed would be a grant left standing (a client's revocation), the index is
  // not enough during a rolling upgrade, when a replica of the previous version writes grants without it.
  const entries =
    options.everyGrant !== true && filter.user !== undefined
      ? await findRecords(deps.store, grantView, 'accountId', filter.user)
      : options.everyGrant !== true && filter.client !== undefined
        ? await findRecords(deps.store, grantView, 'clientId', filter.client)
        : await listAll(deps.store, grantView);
  const matching = entries.filter(
    ({ value }) =>
      (filter.user === undefined || value.accountId === filter.user) && (filter.client === undefined || value.clientId === filter.client),
  );
  const summaries = await Promise.all(
    matching.map(async ({ key, value }) => {
      const issued = await lastTokenIssuedAt(deps, key);
      const audited = recentUse?.get(recentUseKey(value.accountId ?? '', value.clientId ?? ''));
      const candidates = [issued, audited].filter((time): time is number => time !== undefined);
      return summarizeGrant(key, value, candidates.length === 0 ? undefined : Math.max(...candidates));
    }),
  );
  // Most recently used first: what an operator looks for is usually what just happened.
  return summaries.sort((a, b) => (b.lastUsedAt ?? b.createdAt ?? 0) - (a.lastUsedAt ?? a.createdAt ?? 0));
}

/** One grant, or undefined. `subject` restricts it to that user's grants (the connected-apps page). */
export async function findGrant(deps: AdminDeps, grantId: string, options: { subject?: string } = {}): Promise<GrantSummary | undefined> {
  if (!GRANT_ID.test(grantId)) return undefined;
  const stored = await readRecord(deps.store, grantView, grantId);
  if (stored === undefined) return undefined;
  // Someone else's grant looks exactly like a missing one: the answer must not confirm that a grant id exists.
  if (options.subject !== undefined && stored.accountId !== options.subject) return undefined;
  return summarizeGrant(grantId, stored, await lastTokenIssuedAt(deps, grantId));
}

/** Seconds a revoked-grant record must live: past the longest access-token lifetime, plus clock skew. */
export const revocationTtlSeconds = (deps: AdminDeps): number => revocationTtlFor(deps.config.authorization.accessTokenTtlSeconds);

/**
 * Ends a grant the caller may see: `admin` (console, CLI) or `account` (the user's own, on /account).
 * Throws AdminNotFoundError when there is no such grant (or, with `subject`, it belongs to another user).
 */
export async function revokeGrantById(
  deps: AdminDeps,
  grantId: string,
  options: { subject?: string; reason?: Extract<GrantEndReason, 'admin' | 'account'> } = {},
): Promise<GrantSummary & { ended: boolean }> {
  const grant = await findGrant(deps, grantId, options);
  if (grant === undefined) throw new AdminNotFoundError(`no grant ${JSON.stringify(grantId)}`);
  // A person decided: the approvals browsers remember for this user and client stop answering for them, or the
  // client would re-authorize at once without anyone seeing a page (remembered-decisions.ts). Before the end, so a
  // store failure leaves the grant there for the retry, which could not find an ended one.
  await withdrawConsent(deps.store, grant.subject, grant.clientId, deps.clock.now(), deps.config.authorization.consentRememberDays);
  // Two revocations of one grant at once (a double-clicked button, two operators) both found it: the store's delete
  // says which one ended it, the one that is logged and counted.
  const ended = await endGrant(deps, grantId, options.reason ?? (options.subject === undefined ? 'admin' : 'account'));
  await forgetSessionIfLastGrant(deps, grant.subject);
  return { ...grant, ended };
}

/**
 * A user with no grant left has no client Gatehouse acts for: their sealed upstream tokens (the IdP refresh token the
 * broker uses) and cached downstream tokens go too, rather than waiting out their TTL (90 days for a refresh token).
 * Run when a person ends grants (this page, the console, the CLI, a client revoked); a new sign-in stores fresh ones.
 */
export async function forgetSessionIfLastGrant(deps: AdminDeps, subject: string): Promise<void> {
  await forgetSessionsWithoutGrant(deps, [subject]);
}

/** forgetSessionIfLastGrant for the users of many ended grants (a client revoked), reading the grants at most once. */
export async function forgetSessionsWithoutGrant(deps: AdminDeps, subjects: Iterable<string>): Promise<void> {
  for (const subject of await usersWithoutGrant(deps.store, [...subjects].filter((subject) => subject !== ''))) {
    await deleteUpstreamTokens(deps, subject);
    await forgetDownstreamTokens(deps.store, subject);
  }
}

/** Ends a grant known to exist, through the one grant-ending function (the app's, when it passed one). */
export function endGrant(deps: AdminDeps, grantId: string, reason: GrantEndReason): Promise<boolean> {
  const end = deps.endGrant ?? createEndGrant({ store: deps.store, clock: deps.clock, accessTokenTtlSeconds: deps.config.authorization.accessTokenTtlSeconds, grantLifetimeSeconds: deps.config.authorization.refreshTokenAbsoluteSeconds });
  return end(grantId, reason);
}

/**
 * Ends a grant from a console page: a missing grant (or, with `subject`, another user's) is a 404 in `notFound`'s
 * words. Resolves to whether this request ended it (false: a concurrent one did, and is the one counted); either way
 * the page says the grant is revoked, which it is.
 */
export async function revokeGrantForPage(deps: AdminDeps, grantId: string, options: { subject?: string; notFound: string }): Promise<boolean> {
  try {
    return (await revokeGrantById(deps, grantId, options.subject === undefined ? {} : { subject: options.subject })).ended;
  } catch (error) {
    if (error instanceof AdminNotFoundError) throw new ProtocolError('not_found', options.notFound);
    throw error;
  }
}
