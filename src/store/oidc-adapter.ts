import { createHash } from 'node:crypto';
import { seconds, type Clock } from '../runtime/clock.ts';
import type { AdapterFactory } from 'oidc-provider';
import { StoreUnavailableError, type Store } from './store.ts';
import { BEARER_MODELS, GRANT_BOUND_MODELS, oidcConsumedRecord, oidcRecord, type OidcIndex, type OidcPayload } from './oidc-records.ts';
import { createRecord, deleteRecord, deleteRecords, findRecords, readRecord, writeRecord } from './record-access.ts';
import type { RecordDefinition } from './define-record.ts';
import { TokenEndpointError } from '../errors/token-endpoint-error.ts';

export type { OidcPayload } from './oidc-records.ts';

/** The storage adapter contract of oidc-provider 9 (see its `lib/adapters/memory_adapter.js`). */
export interface OidcAdapter {
  upsert(id: string, payload: OidcPayload, expiresIn?: number): Promise<void>;
  find(id: string): Promise<OidcPayload | undefined>;
  findByUid(uid: string): Promise<OidcPayload | undefined>;
  findByUserCode(userCode: string): Promise<OidcPayload | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

export type OidcAdapterClass = new (model: string) => OidcAdapter;

const bearerModels = new Set<string>(BEARER_MODELS);

/** Models oidc-provider consumes (single use); only these carry a `consumed` marker. */
const consumableModels = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/** Consumed markers outlive a record without `exp` by this much; long enough to cover any code or token lifetime. */
const consumedMarkerFallbackSeconds = 14 * 24 * 3600;

/**
 * Thrown by `consume` when the record was consumed already (a second redemption racing the first). oidc-provider
 * renders any thrown error that has `expose`, `statusCode` and the OAuth code as `message` as that OAuth error, so
 * the losing request gets `400 invalid_grant` — never a second set of tokens, never a 500. A code redeemed twice at
 * once has leaked, so the grant must end: the error names the grant, and the authorization server's adapter hooks
 * end it through `endGrant` (the store does not end grants itself: ending one is more than deleting records).
 * @see RFC 6749 §4.1.2 (a code is single use)
 */
export class GrantAlreadyConsumedError extends TokenEndpointError {
  readonly allow_redirect = false;

  /** The grant of the consumed record, which must now end. */
  readonly grantId: string | undefined;

  constructor(model: string, grantId?: string) {
    super('invalid_grant', 'grant request is invalid', { detail: `${model} already consumed` });
    this.name = 'GrantAlreadyConsumedError';
    this.grantId = grantId;
  }
}

/**
 * A store outage as oidc-provider understands an error: `expose` with the OAuth code as `message`, so the provider
 * answers `503 temporarily_unavailable` in each endpoint's own format (JSON, its error page, or — once the client's
 * redirect URI is validated — a redirect, RFC 6749 §4.1.2.1) instead of a 500 `server_error`. It is still a
 * StoreUnavailableError, so a Fastify route that reached the provider (consent, callback) maps it the same way.
 */
export class ProviderStoreUnavailableError extends StoreUnavailableError {
  readonly error = 'temporarily_unavailable';
  readonly error_description = 'The service is temporarily unavailable; retry later.';
  readonly error_detail: string;
  readonly status = 503;
  readonly statusCode = 503;
  readonly expose = true;

  constructor(outage: StoreUnavailableError) {
    super('temporarily_unavailable', { cause: outage, retryAfterSeconds: outage.retryAfterSeconds });
    this.name = 'ProviderStoreUnavailableError';
    this.error_detail = outage.detail;
  }

  override get detail(): string {
    return this.error_detail;
  }
}

/** Rethrows a store outage from `pending` as ProviderStoreUnavailableError; anything else passes unchanged. */
export async function providerFacing<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (error) {
    if (error instanceof StoreUnavailableError && !(error instanceof ProviderStoreUnavailableError)) {
      throw new ProviderStoreUnavailableError(error);
    }
    throw error;
  }
}

/** The adapter oidc-provider is given, with every store outage made a `temporarily_unavailable` it can render. */
export function exposeStoreOutages(factory: AdapterFactory): AdapterFactory {
  return (name) => {
    const adapter = factory(name);
    return {
      upsert: (id, payload, expiresIn) => providerFacing(adapter.upsert(id, payload, expiresIn)),
      find: (id) => providerFacing(adapter.find(id)),
      findByUid: (uid) => providerFacing(adapter.findByUid(uid)),
      findByUserCode: (userCode) => providerFacing(adapter.findByUserCode(userCode)),
      consume: (id) => providerFacing(adapter.consume(id)),
      destroy: (id) => providerFacing(adapter.destroy(id)),
      revokeByGrantId: (grantId) => providerFacing(adapter.revokeByGrantId(grantId)),
    };
  };
}

/** Storage key of a model instance: the id itself, or its SHA-256 (base64url) for bearer models. */
export function oidcStorageKey(model: string, id: string): string {
  return bearerModels.has(model) ? sha256(id) : id;
}

/**
 * Builds the `adapter` option for `new Provider(issuer, { adapter })`: a class oidc-provider constructs once per
 * model name, storing every model in the shared Store so all replicas see the same codes, tokens and sessions.
 */
export function createOidcAdapter(store: Store, clock: Clock): OidcAdapterClass {
  return class StoreOidcAdapter implements OidcAdapter {
    readonly #model: string;
    readonly #record: RecordDefinition<OidcPayload, OidcIndex>;
    readonly #hashed: boolean;

    constructor(model: string) {
      this.#model = model;
      this.#record = oidcRecord(model);
      this.#hashed = bearerModels.has(model);
    }

    async upsert(id: string, payload: OidcPayload, expiresIn?: number): Promise<void> {
      const ttlSeconds = typeof expiresIn === 'number' && expiresIn > 0 ? expiresIn : undefined;
      await writeRecord(store, this.#record, oidcStorageKey(this.#model, id), this.#toStored(payload), {
        ttlSeconds,
        indexes: indexesOf(this.#record, payload),
      });
    }

    async find(id: string): Promise<OidcPayload | undefined> {
      const key = oidcStorageKey(this.#model, id);
      const stored = await readRecord(store, this.#record, key);
      if (!stored) return undefined;
      return this.#withConsumed(key, this.#hashed ? { ...stored, jti: id } : stored);
    }

    async findByUid(uid: string): Promise<OidcPayload | undefined> {
      const [entry] = await findRecords(store, this.#record, 'uid', uid);
      return entry && this.#withConsumed(entry.key, entry.value);
    }

    async findByUserCode(userCode: string): Promise<OidcPayload | undefined> {
      const [entry] = await findRecords(store, this.#record, 'userCode', sha256(userCode));
      return entry && this.#withConsumed(entry.key, entry.value);
    }

    /**
     * `payload` with `consumed` from its marker: every lookup reads it, so a consumed record reads as consumed whichever
     * way it is found, without the record itself being rewritten (see consume).
     */
    async #withConsumed(key: string, payload: OidcPayload): Promise<OidcPayload> {
      if (payload.consumed === undefined && consumableModels.has(this.#model)) {
        const consumed = await readRecord(store, oidcConsumedRecord, `${this.#model}:${key}`);
        if (consumed !== undefined) payload.consumed = consumed;
      }
      return payload;
    }

    async consume(id: string): Promise<void> {
      const key = oidcStorageKey(this.#model, id);
      const stored = await readRecord(store, this.#record, key);
      if (!stored) return;
      const now = seconds(clock.now());
      // The record's whole lifetime, when its payload says it (oidc-provider's codes and tokens carry `iat` and `exp`).
      const lifetime = typeof stored.exp === 'number' && typeof stored.iat === 'number' ? stored.exp - stored.iat : undefined;
      // With a known lifetime, the marker lives that long from now. The record was saved before this consume with a
      // TTL of at most its lifetime (oidc-provider saves the time remaining), so the marker outlives it whatever the
      // replicas' clocks say. A TTL counted to `exp` on this replica's clock would end early when this clock runs
      // ahead of the issuer's, and the record, still live to a replica on the issuer's clock, would read unconsumed.
      const ttlSeconds =
        lifetime !== undefined
          ? Math.max(lifetime, 1) + 1
          : typeof stored.exp === 'number'
            ? Math.max(stored.exp - now, 1)
            : consumedMarkerFallbackSeconds;
      // setIfAbsent is the atomic step: of two concurrent redemptions exactly one creates the marker.
      const first = await createRecord(store, oidcConsumedRecord, `${this.#model}:${key}`, now, { ttlSeconds });
      if (!first || stored.consumed !== undefined) {
        // Two parties redeemed the same code at once, so it leaked (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
        throw new GrantAlreadyConsumedError(this.#model, typeof stored.grantId === 'string' ? stored.grantId : undefined);
      }
      // A marker that outlives the record is what every lookup reads (#withConsumed): no rewrite of the record, a
      // store write saved on every code exchange and refresh. Otherwise the record carries the mark itself (written
      // after the marker, so a reader in between still sees "consumed"), with the marker's TTL when it has an `exp`.
      if (lifetime !== undefined) return;
      await writeRecord(store, this.#record, key, { ...stored, consumed: now }, {
        ttlSeconds: typeof stored.exp === 'number' ? ttlSeconds : undefined,
        indexes: indexesOf(this.#record, stored),
      });
    }

    async destroy(id: string): Promise<void> {
      await deleteRecord(store, this.#record, oidcStorageKey(this.#model, id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      for (const model of GRANT_BOUND_MODELS) {
        await deleteRecords(store, oidcRecord(model), 'grantId', grantId);
      }
    }

    #toStored(payload: OidcPayload): OidcPayload {
      if (!this.#hashed) return payload;
      const { jti: _jti, ...rest } = payload;
      // DeviceCode is found by its user code, and oidc-provider needs the id back to update it; the device code
      // is short-lived and only the user code's hash is indexed, so this one model keeps `jti`.
      return this.#model === 'DeviceCode' ? payload : rest;
    }
  };
}

/** The indexes `upsert` writes for a payload of `model`: for a backfill of indexes declared later (oidc-index-backfill.ts). */
export function oidcIndexesOf(model: string, payload: OidcPayload): Partial<Record<OidcIndex, string>> {
  return indexesOf(oidcRecord(model), payload);
}

/** The indexes the model declares (oidc-records.ts), from the payload's fields. */
function indexesOf(record: RecordDefinition<OidcPayload, OidcIndex>, payload: OidcPayload): Partial<Record<OidcIndex, string>> {
  const indexes: Partial<Record<OidcIndex, string>> = {};
  const declared = (index: OidcIndex) => record.indexes.includes(index);
  if (declared('grantId') && typeof payload.grantId === 'string') indexes.grantId = payload.grantId;
  if (declared('uid') && typeof payload.uid === 'string') indexes.uid = payload.uid;
  if (declared('accountId') && typeof payload.accountId === 'string') indexes.accountId = payload.accountId;
  if (declared('clientId') && typeof payload.clientId === 'string') indexes.clientId = payload.clientId;
  // The user code is typed by a person on another device: index its hash, not the code.
  if (declared('userCode') && typeof payload.userCode === 'string') indexes.userCode = sha256(payload.userCode);
  return indexes;
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}
