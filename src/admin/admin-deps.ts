import type { GatehouseConfig } from '../config/schema.ts';
import type { EndGrant } from '../grants/end-grant.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';
import { z } from 'zod';
import { oidcRecords } from '../store/oidc-records.ts';
import { viewRecord, type RecordDefinition } from '../store/define-record.ts';
import { listRecords } from '../store/record-access.ts';
import { GatehouseError } from '../errors/internal-errors.ts';

/**
 * What the admin operations (CLI and console alike) need: the store the gateway uses, the clock, and the config
 * (pre-registered clients, token lifetimes). Nothing here holds state, so the CLI can run while the gateway serves.
 */
export interface AdminDeps {
  store: Store;
  clock: Clock;
  config: GatehouseConfig;
  /** The grant-ending function that logs and audits each end (the gateway's, or the CLI's); tests may leave it out. */
  endGrant?: EndGrant;
  /** The clients in `config` that a demo registers when it starts, not its file (the CLI's advice differs). */
  demoClients?: ReadonlySet<string>;
}

/** "No such client/grant/user" (or one the caller may not see): the CLI prints it, the console answers 404. */
export class AdminNotFoundError extends GatehouseError {
  constructor(message: string) {
    super('GH_NOT_FOUND', message);
    this.name = 'AdminNotFoundError';
  }
}

/** A decision about a version that is no longer the current one (a tool definition that changed after it was shown). */
export class AdminChangedError extends GatehouseError {
  constructor(message: string) {
    super('GH_CHANGED', message);
    this.name = 'AdminChangedError';
  }
}

/**
 * The fields of oidc-provider's records the admin surfaces read (src/store/oidc-records.ts): views, not
 * declarations, since oidc-provider owns the shapes. Unknown fields pass; a named field of the wrong type makes the
 * record invalid (GH_RECORD_INVALID) rather than a summary built from garbage.
 */
export const grantView = viewRecord(
  oidcRecords.Grant,
  z.looseObject({
    accountId: z.string().optional(),
    clientId: z.string().optional(),
    iat: z.number().optional(),
    exp: z.number().optional(),
    openid: z.looseObject({ scope: z.string().optional() }).optional(),
    /** Resource indicator → space-separated scopes granted for it (RFC 8707). */
    resources: z.record(z.string(), z.string()).optional(),
  }),
);
export const clientView = viewRecord(
  oidcRecords.Client,
  z.looseObject({
    client_id: z.string().optional(),
    client_name: z.string().optional(),
    client_id_issued_at: z.number().optional(),
    redirect_uris: z.array(z.string()).optional(),
  }),
);
export const refreshTokenView = viewRecord(oidcRecords.RefreshToken, z.looseObject({ iat: z.number().optional() }));
export const registrationTokenView = viewRecord(oidcRecords.RegistrationAccessToken, z.looseObject({ clientId: z.string().optional() }));

/** The namespaces, for tests that read the store directly. */
export const GRANT_NAMESPACE = oidcRecords.Grant.namespace;
export const CLIENT_NAMESPACE = oidcRecords.Client.namespace;
export const REFRESH_TOKEN_NAMESPACE = oidcRecords.RefreshToken.namespace;
export const REGISTRATION_TOKEN_NAMESPACE = oidcRecords.RegistrationAccessToken.namespace;

/**
 * Every live record of a namespace, page by page, validated. Admin listings are rare and small next to the request
 * path, so a scan is acceptable here; the hot path (bearer checks) never does this.
 */
export async function listAll<T>(
  store: Store,
  definition: RecordDefinition<T, string>,
  options: { after?: string; pageSize?: number } = {},
): Promise<{ key: string; value: T }[]> {
  const pageSize = options.pageSize ?? 500;
  const all: { key: string; value: T }[] = [];
  let after = options.after;
  for (;;) {
    const page = await listRecords(store, definition, { limit: pageSize, after });
    all.push(...page);
    if (page.length < pageSize) return all;
    after = page.at(-1)?.key;
  }
}

/** oidc-provider records carry times in epoch seconds; the admin surfaces use epoch ms like the rest of Gatehouse. */
export const fromEpochSeconds = (value: unknown): number | undefined =>
  typeof value === 'number' && Number.isFinite(value) ? value * 1000 : undefined;
