import type { ClientMetadata } from 'oidc-provider';
import type { PreRegisteredClient } from '../config/schema.ts';
import { hashClientSecret } from '../keys/hashing.ts';

/**
 * Clients from `authorization.clients` as oidc-provider static clients. Secrets are hashed at start-up, so the
 * provider (and anything that dumps its state) only ever holds the hash; client-overrides.ts verifies against it.
 */
export async function preRegisteredClientMetadata(clients: PreRegisteredClient[]): Promise<ClientMetadata[]> {
  return Promise.all(
    clients.map(async (client): Promise<ClientMetadata> => {
      const confidential = client.clientSecret !== undefined;
      const usesRedirects = client.grantTypes.includes('authorization_code');
      return {
        client_id: client.clientId,
        ...(client.name === undefined ? {} : { client_name: client.name }),
        ...(confidential ? { client_secret: await hashClientSecret(client.clientSecret as string) } : {}),
        token_endpoint_auth_method: confidential ? 'client_secret_basic' : 'none',
        grant_types: client.grantTypes,
        redirect_uris: client.redirectUris,
        response_types: usesRedirects ? ['code'] : [],
      };
    }),
  );
}

/** Ids of pre-registered confidential clients: the only ones allowed to introspect (RFC 7662 §4). */
export function confidentialClientIds(clients: PreRegisteredClient[]): Set<string> {
  return new Set(clients.filter((client) => client.clientSecret !== undefined).map((client) => client.clientId));
}
