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
      const usesRedirects = client.grantTypes.includes('authorization_code');
      return {
        client_id: client.clientId,
        ...(client.name === undefined ? {} : { client_name: client.name }),
        ...(client.clientSecret === undefined ? {} : { client_secret: await hashClientSecret(client.clientSecret) }),
        ...(client.jwks === undefined ? {} : { jwks: client.jwks }),
        token_endpoint_auth_method: tokenEndpointAuthMethod(client),
        grant_types: client.grantTypes,
        redirect_uris: client.redirectUris,
        response_types: usesRedirects ? ['code'] : [],
      };
    }),
  );
}

/**
 * How a pre-registered client authenticates at the token endpoint: with its keys (RFC 7523 §2.2, preferred by the MCP
 * client-credentials extension), with its secret, or not at all (a public client).
 */
function tokenEndpointAuthMethod(client: PreRegisteredClient): string {
  if (client.jwks !== undefined) return 'private_key_jwt';
  if (client.clientSecret !== undefined) return 'client_secret_basic';
  return 'none';
}

/** Ids of pre-registered confidential clients (secret or keys): the only ones allowed to introspect (RFC 7662 §4). */
export function confidentialClientIds(clients: PreRegisteredClient[]): Set<string> {
  return new Set(clients.filter((client) => tokenEndpointAuthMethod(client) !== 'none').map((client) => client.clientId));
}
