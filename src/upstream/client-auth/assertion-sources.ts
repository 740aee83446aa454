import { readOperatorFile } from '../../config/operator-file.ts';
import { z } from 'zod';
import { UpstreamError } from '../errors.ts';
import type { AssertionSource } from './federated-assertion.ts';

/**
 * The platforms that can vouch for Gatehouse without a secret. Each returns a JWT the upstream trusts through a
 * federated identity credential; see docs/entra.md for the matching app-registration settings.
 */

export interface SourceDeps {
  fetch: typeof globalThis.fetch;
  timeoutMs: number;
}

/**
 * Kubernetes workload identity: the kubelet projects a service-account token into a file and rotates it in place
 * (AKS sets `AZURE_FEDERATED_TOKEN_FILE`). Read on every use, so rotation needs no restart.
 */
export function tokenFileSource(path: string, read: (path: string) => Promise<string> = (p) => readOperatorFile(p)): AssertionSource {
  return {
    kind: 'token-file',
    async fetchAssertion() {
      try {
        return await read(path);
      } catch (cause) {
        throw new UpstreamError('server_error', 'The federated token file could not be read.', {}, { cause });
      }
    },
  };
}

const managedIdentityResponse = z.object({ access_token: z.string().min(1) });

async function getJson(deps: SourceDeps, url: URL, init: RequestInit, kind: string): Promise<unknown> {
  let response: Response;
  try {
    response = await deps.fetch(url, { ...init, signal: AbortSignal.timeout(deps.timeoutMs) });
  } catch (cause) {
    throw new UpstreamError('temporarily_unavailable', `The ${kind} endpoint did not answer.`, {}, { cause });
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new UpstreamError('temporarily_unavailable', `The ${kind} endpoint answered HTTP ${response.status}.`);
  }
  return response.json();
}

async function managedIdentityToken(deps: SourceDeps, url: URL, headers: Record<string, string>, kind: string): Promise<string> {
  const parsed = managedIdentityResponse.safeParse(await getJson(deps, url, { headers }, kind));
  if (!parsed.success) throw new UpstreamError('server_error', `The ${kind} endpoint answered without an access_token.`);
  return parsed.data.access_token;
}

/**
 * App Service / Container Apps / Functions managed identity (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, API 2019-08-01).
 * The token it returns for `api://AzureADTokenExchange` is the assertion for the app's federated credential.
 */
export function appServiceManagedIdentitySource(
  deps: SourceDeps & { endpoint: string; identityHeader: string; clientId: string; audience: string },
): AssertionSource {
  return {
    kind: 'app-service',
    fetchAssertion() {
      const url = new URL(deps.endpoint);
      url.searchParams.set('api-version', '2019-08-01');
      url.searchParams.set('resource', deps.audience);
      url.searchParams.set('client_id', deps.clientId);
      return managedIdentityToken(deps, url, { 'X-IDENTITY-HEADER': deps.identityHeader }, 'managed identity');
    },
  };
}

/** Azure VM / AKS node instance metadata service; `Metadata: true` is its SSRF guard, so it is always sent. */
export function imdsManagedIdentitySource(
  deps: SourceDeps & { clientId: string; audience: string; endpoint?: string },
): AssertionSource {
  return {
    kind: 'imds',
    fetchAssertion() {
      const url = new URL(deps.endpoint ?? 'http://169.254.169.254/metadata/identity/oauth2/token');
      url.searchParams.set('api-version', '2018-02-01');
      url.searchParams.set('resource', deps.audience);
      url.searchParams.set('client_id', deps.clientId);
      return managedIdentityToken(deps, url, { Metadata: 'true' }, 'instance metadata');
    },
  };
}

const workloadIssuerResponse = z.object({ token: z.string().min(1) });

/** Local demo: the workload-identity issuer in src/demo/workload-identity mints the service-account JWT on request. */
export function workloadIssuerSource(deps: SourceDeps & { issuerUrl: string; audience: string }): AssertionSource {
  return {
    kind: 'workload-issuer',
    async fetchAssertion() {
      const url = new URL('token', deps.issuerUrl.endsWith('/') ? deps.issuerUrl : `${deps.issuerUrl}/`);
      const body = JSON.stringify({ audience: deps.audience });
      const json = await getJson(deps, url, { method: 'POST', body, headers: { 'content-type': 'application/json' } }, 'workload-identity issuer');
      const parsed = workloadIssuerResponse.safeParse(json);
      if (!parsed.success) throw new UpstreamError('server_error', 'The workload-identity issuer answered without a token.');
      return parsed.data.token;
    },
  };
}
