import { readOperatorFileSync } from '../../config/operator-file.ts';
import { ClientSecretBasic, ClientSecretPost, type ClientAuth } from 'openid-client';
import { ConfigError } from '../../config/config-error.ts';
import { unreadableFileReason } from '../../config/file-paths.ts';
import type { UpstreamConfig } from '../../config/schema.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Random } from '../../runtime/random.ts';
import {
  appServiceManagedIdentitySource,
  imdsManagedIdentitySource,
  tokenFileSource,
  workloadIssuerSource,
} from './assertion-sources.ts';
import { createFederatedAssertionProvider, type AssertionSource, type FederatedAssertionProvider } from './federated-assertion.ts';
import { createPrivateKeyJwtSigner } from './private-key-jwt.ts';
import { JWT_BEARER_CLIENT_ASSERTION_TYPE } from '../../protocol/oauth-urns.ts';
export { JWT_BEARER_CLIENT_ASSERTION_TYPE };

/** @see RFC 7521 §4.2, RFC 7523 §2.2 */

export type ClientAuthConfig = UpstreamConfig['clientAuth'];

export interface ClientAuthDeps {
  clientId: string;
  clock: Clock;
  random: Random;
  fetch: typeof globalThis.fetch;
  timeoutMs: number;
  /** Process environment (`AZURE_FEDERATED_TOKEN_FILE`, `IDENTITY_ENDPOINT`, `IDENTITY_HEADER`); injected for tests. */
  env?: Record<string, string | undefined>;
  readTextFile?: (path: string) => string;
}

export interface UpstreamClientAuth {
  method: ClientAuthConfig['method'];
  /** openid-client's hook: adds the authentication to every token-endpoint request body/headers. */
  clientAuth: ClientAuth;
}

function assertionAuth(clientId: string, assertion: () => Promise<string>): ClientAuth {
  return async (_as, _client, body) => {
    body.set('client_id', clientId);
    body.set('client_assertion_type', JWT_BEARER_CLIENT_ASSERTION_TYPE);
    body.set('client_assertion', await assertion());
  };
}

/** Chooses where the federated assertion comes from: demo issuer, managed identity, then the projected token file. */
export function federatedAssertionSource(config: Extract<ClientAuthConfig, { method: 'federated' }>, deps: ClientAuthDeps): AssertionSource {
  const env = deps.env ?? process.env;
  const io = { fetch: deps.fetch, timeoutMs: deps.timeoutMs };
  if (config.issuerUrl) return workloadIssuerSource({ ...io, issuerUrl: config.issuerUrl, audience: config.audience });
  if (config.managedIdentityClientId) {
    const endpoint = env.IDENTITY_ENDPOINT;
    const identityHeader = env.IDENTITY_HEADER;
    const common = { ...io, clientId: config.managedIdentityClientId, audience: config.audience };
    return endpoint && identityHeader
      ? appServiceManagedIdentitySource({ ...common, endpoint, identityHeader })
      : imdsManagedIdentitySource(common);
  }
  const tokenFile = config.tokenFile ?? env.AZURE_FEDERATED_TOKEN_FILE;
  if (!tokenFile) {
    throw new ConfigError([
      'upstream.clientAuth: method federated needs a token source — set tokenFile (or AZURE_FEDERATED_TOKEN_FILE in the environment) or managedIdentityClientId',
    ]);
  }
  return tokenFileSource(tokenFile);
}

/**
 * Client authentication to the upstream token endpoint, secretless first. Built when the upstream client is
 * created so a missing key file or an impossible combination fails at start; assertions themselves are obtained per
 * request (cached only until shortly before they expire).
 */
export function createUpstreamClientAuth(config: ClientAuthConfig, deps: ClientAuthDeps): UpstreamClientAuth & {
  federated?: FederatedAssertionProvider;
} {
  const read = deps.readTextFile ?? ((path: string) => readOperatorFileSync(path));
  const readText = (field: string, path: string): string => {
    try {
      return read(path);
    } catch (error) {
      throw new ConfigError([`upstream.clientAuth.${field}: "${path}" ${unreadableFileReason(error)}`]);
    }
  };
  switch (config.method) {
    case 'federated': {
      const source = federatedAssertionSource(config, deps);
      const federated = createFederatedAssertionProvider({ source, clock: deps.clock, cache: source.kind !== 'token-file' });
      return { method: config.method, federated, clientAuth: assertionAuth(deps.clientId, () => federated.getAssertion()) };
    }
    case 'private_key_jwt': {
      const signer = createPrivateKeyJwtSigner({
        clientId: deps.clientId,
        privateKeyPem: readText('privateKeyFile', config.privateKeyFile),
        ...(config.certificateFile ? { certificatePem: readText('certificateFile', config.certificateFile) } : {}),
        ...(config.keyId ? { keyId: config.keyId } : {}),
        clock: deps.clock,
        random: deps.random,
      });
      return {
        method: config.method,
        clientAuth: async (as, client, body, headers) => {
          if (!as.token_endpoint) throw new Error('private_key_jwt: the upstream metadata has no token_endpoint');
          await assertionAuth(deps.clientId, () => signer.sign(as.token_endpoint as string))(as, client, body, headers);
        },
      };
    }
    case 'client_secret_post':
      return { method: config.method, clientAuth: ClientSecretPost(config.clientSecret) };
    case 'client_secret_basic':
      return { method: config.method, clientAuth: ClientSecretBasic(config.clientSecret) };
  }
}
