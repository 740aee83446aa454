import type { GatehouseConfig } from '../config/schema.ts';
import type { EndGrant } from '../grants/end-grant.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';
import { oidcNamespace } from '../store/oidc-adapter.ts';
import { GatehouseError } from '../errors/internal-errors.ts';

/**
 * What the admin operations (CLI and console alike) need: the store the gateway uses, the clock, and the config
 * (pre-registered clients, token lifetimes). Nothing here holds state, so the CLI can run while the gateway serves.
 */
export interface AdminDeps {
  store: Store;
  clock: Clock;
  config: GatehouseConfig;
  /** The running gateway's grant-ending function (logs each end); the CLI builds one from the store. */
  endGrant?: EndGrant;
}

/** "No such client/grant/user" (or one the caller may not see): the CLI prints it, the console answers 404. */
export class AdminNotFoundError extends GatehouseError {
  constructor(message: string) {
    super('GH_NOT_FOUND', message);
    this.name = 'AdminNotFoundError';
  }
}

export const GRANT_NAMESPACE = oidcNamespace('Grant');
export const CLIENT_NAMESPACE = oidcNamespace('Client');
export const REFRESH_TOKEN_NAMESPACE = oidcNamespace('RefreshToken');
export const REGISTRATION_TOKEN_NAMESPACE = oidcNamespace('RegistrationAccessToken');

/**
 * Every live record of a namespace, page by page. Admin listings are rare and small next to the request path, so a
 * scan is acceptable here; the hot path (bearer checks) never does this.
 */
export async function listAll<T>(store: Store, namespace: string, options: { after?: string; pageSize?: number } = {}): Promise<{ key: string; value: T }[]> {
  const pageSize = options.pageSize ?? 500;
  const all: { key: string; value: T }[] = [];
  let after = options.after;
  for (;;) {
    const page = await store.list<T>(namespace, { limit: pageSize, after });
    all.push(...page);
    if (page.length < pageSize) return all;
    after = page.at(-1)?.key;
  }
}

/** oidc-provider records carry times in epoch seconds; the admin surfaces use epoch ms like the rest of Gatehouse. */
export const fromEpochSeconds = (value: unknown): number | undefined =>
  typeof value === 'number' && Number.isFinite(value) ? value * 1000 : undefined;
