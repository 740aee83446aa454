import { z } from 'zod';
import { defineRecord, type RecordDefinition } from './define-record.ts';

/**
 * The records oidc-provider stores through our adapter (oidc-adapter.ts), one namespace `oidc:<Model>` per model.
 * oidc-provider owns their shape and changes it between versions, so each schema only asserts "a JSON object" and
 * passes every field through: validating more would make a provider upgrade a storage migration.
 */

/** What oidc-provider stores for one model instance; only the fields Gatehouse reads are named. */
export const oidcPayloadSchema = z.looseObject({});
export interface OidcPayload {
  [claim: string]: unknown;
  jti?: string;
  grantId?: string;
  uid?: string;
  userCode?: string;
  consumed?: number;
  iat?: number;
  exp?: number;
}

export type OidcIndex = 'grantId' | 'uid' | 'userCode' | 'accountId' | 'clientId';

/**
 * Models whose id is a bearer credential. They are stored under SHA-256 of the id with `jti` left out of the record,
 * so someone who reads the store (a backup, a Redis replica) cannot present what they find as a token.
 */
export const BEARER_MODELS = [
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'ClientCredentials',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'RegistrationAccessToken',
  'InitialAccessToken',
  'PreAuthorizedCode',
] as const;

/** Models oidc-provider links to a grant; ending the grant removes all of them (src/grants/end-grant.ts). */
export const GRANT_BOUND_MODELS = [
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
] as const;

const OTHER_MODELS = ['Session', 'Grant', 'Interaction', 'Client', 'PushedAuthorizationRequest', 'ReplayDetection'] as const;

export type OidcModel = (typeof BEARER_MODELS)[number] | (typeof OTHER_MODELS)[number];

const modelIndexes: Partial<Record<OidcModel, readonly OidcIndex[]>> = {
  AccessToken: ['grantId'],
  AuthorizationCode: ['grantId'],
  RefreshToken: ['grantId'],
  DeviceCode: ['grantId', 'userCode'],
  BackchannelAuthenticationRequest: ['grantId'],
  PreAuthorizedCode: ['grantId'],
  Session: ['uid'],
  Interaction: ['grantId'],
  // A user's grants (their connected-apps page, the last-grant check) and a client's (revoking the client), found
  // without reading every grant. Grants written before these indexes existed get them at start (oidc-index-backfill.ts).
  Grant: ['accountId', 'clientId'],
};

const OWNER = 'src/store/oidc-adapter.ts';

function modelRecord(model: OidcModel): RecordDefinition<OidcPayload, OidcIndex> {
  const bearer = (BEARER_MODELS as readonly string[]).includes(model);
  return defineRecord<OidcPayload, OidcIndex>({
    namespace: `oidc:${model}`,
    owner: OWNER,
    key: bearer ? 'SHA-256 (base64url) of the token id' : model === 'Interaction' ? 'the interaction uid' : 'the model id',
    schema: oidcPayloadSchema,
    ttl: '`expiresIn` from oidc-provider',
    indexes: modelIndexes[model] ?? [],
    singleUse: false,
    secrets: secretsOf(model, bearer),
    description: `oidc-provider's ${model} payload, owned by oidc-provider (any JSON object passes its schema).`,
  });
}

function secretsOf(model: OidcModel, bearer: boolean): string {
  if (model === 'DeviceCode') return 'key hashed; keeps `jti` (found by user code, of which only the SHA-256 is indexed)';
  if (bearer) return 'key hashed; stored without `jti` (restored from the id on `find`)';
  if (model === 'Client') return '`client_secret` only as a hash (SHA-256 of the generated secret; scrypt for a short one; src/keys/hashing.ts); the rest plain';
  if (model === 'Session' || model === 'Interaction') return 'plain; the key is a cookie value (see below)';
  return 'plain';
}

export const oidcRecords = Object.fromEntries(
  [...BEARER_MODELS, ...OTHER_MODELS].map((model) => [model, modelRecord(model)]),
) as Record<OidcModel, RecordDefinition<OidcPayload, OidcIndex>>;

/** The definition of a model's namespace; oidc-provider may name a model we do not list, which is stored alike. */
export function oidcRecord(model: string): RecordDefinition<OidcPayload, OidcIndex> {
  return (oidcRecords as Record<string, RecordDefinition<OidcPayload, OidcIndex>>)[model] ?? modelRecord(model as OidcModel);
}

export const oidcConsumedRecord = defineRecord({
  namespace: 'oidc:consumed',
  owner: OWNER,
  key: '`<Model>:<storage key>`',
  schema: z.number(),
  ttl: "the consumed record's whole lifetime (`exp` − `iat`) plus a second, from the consume; until its `exp` without an `iat`; 14 days without an `exp`",
  singleUse: false,
  secrets: 'none',
  description:
    'Epoch seconds of the first `consume` of a code or token, created with `setIfAbsent`: of two redemptions racing, exactly one creates it; the other ends the grant (RFC 6749 §4.1.2).',
});
