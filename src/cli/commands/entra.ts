import { stringify } from 'yaml';
import { createGraphClient, type GraphRequest, type OperatorCredential } from '../../upstream/entra-setup/graph-client.ts';
import type { Federation } from '../../upstream/entra-setup/federation.ts';
import { runEntraSetup } from '../../upstream/entra-setup/run-entra-setup.ts';
import { readSetupInputs, writeUpstreamSection } from '../../upstream/entra-setup/setup-config.ts';
import { CliUsageError, type CliCommand, type CliIo } from '../command.ts';

/**
 * `gatehouse entra setup`: the Entra app registration, federated credential and Graph permissions in one command,
 * with the operator's own sign-in (an existing Azure CLI login, or a device code), then the `upstream` section
 * written into the config. The work is src/upstream/entra-setup/; this file parses options and prints.
 */
export interface EntraSetupDeps {
  /** The operator's Graph credential; default: @azure/identity's AzureCliCredential or DeviceCodeCredential. */
  credential?: (signIn: 'azure-cli' | 'device-code', tenantId: string | undefined, io: CliIo) => Promise<OperatorCredential>;
  fetch?: typeof globalThis.fetch;
}

type Values = Record<string, string | boolean | string[] | undefined>;
const text = (values: Values, name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);

async function azureIdentityCredential(signIn: 'azure-cli' | 'device-code', tenantId: string | undefined, io: CliIo): Promise<OperatorCredential> {
  // Loaded only here, so no other command pays for the Azure SDK.
  const identity = await import('@azure/identity');
  const tenant = tenantId ? { tenantId } : {};
  if (signIn === 'azure-cli') return new identity.AzureCliCredential(tenant);
  return new identity.DeviceCodeCredential({ ...tenant, userPromptCallback: (info) => io.stderr(`${info.message}\n`) });
}

/**
 * The operator's sign-in, its failure said with what to do: the Azure SDK's own messages named neither the other
 * sign-in ("Azure CLI could not be found. Please visit https://aka.ms/azure-cli") nor what was unreachable
 * ("network_error: See https://aka.ms/msal.js.errors#network_error").
 */
function withSignInAdvice(credential: OperatorCredential, signIn: 'azure-cli' | 'device-code'): OperatorCredential {
  return {
    async getToken(scopes) {
      try {
        return await credential.getToken(scopes);
      } catch (error) {
        const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0]?.slice(0, 300);
        const fix =
          signIn === 'azure-cli'
            ? 'sign in with "az login --tenant <tenant>" (with --allow-no-subscriptions for a tenant without subscriptions), or pass --sign-in device-code to sign in in a browser instead'
            : 'check that Microsoft\'s sign-in (login.microsoftonline.com) is reachable from this machine, through its proxy if it has one, and that --tenant names your tenant';
        // The Graph client says it was the sign-in (GH_GRAPH_REQUEST, exit 1); this says what to do about it.
        throw new Error(`${reason} — ${fix}`, { cause: error });
      }
    },
  };
}

function federationFrom(values: Values): Federation {
  const kind = text(values, 'federation');
  const need = (name: string): string => {
    const value = text(values, name);
    if (!value) throw new CliUsageError(`--federation ${kind} needs --${name}`);
    return value;
  };
  switch (kind) {
    case 'managed-identity':
      return { kind, clientId: need('managed-identity-client-id') };
    case 'aks':
      return { kind, issuer: need('aks-issuer'), namespace: text(values, 'namespace') ?? 'gatehouse', serviceAccount: text(values, 'service-account') ?? 'gatehouse' };
    case 'github': {
      const repository = need('github-repo');
      if (!/^[\w.-]+\/[\w.-]+$/.test(repository)) throw new CliUsageError(`--github-repo must be OWNER/REPO (got "${repository}")`);
      const environment = text(values, 'github-environment');
      const ref = text(values, 'github-ref');
      return { kind, repository, ...(environment ? { environment } : {}), ...(ref ? { ref } : {}) };
    }
    default:
      throw new CliUsageError(`--federation must be managed-identity, aks or github (got ${kind === undefined ? 'nothing' : `"${kind}"`})`);
  }
}

function httpsUrl(value: string, option: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliUsageError(`${option} must be a URL (got "${value}")`);
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !loopback) throw new CliUsageError(`${option} must be an https URL (got "${value}")`);
  return url.href.replace(/\/+$/, '');
}

function describeRequest(request: GraphRequest): string {
  const line = `${request.skipped ? 'would send ' : ''}${request.method} ${request.url}`;
  return request.body === undefined ? `${line}\n` : `${line}\n${JSON.stringify(request.body, null, 2).replace(/^/gm, '    ')}\n`;
}

export function createEntraSetupCommand(deps: EntraSetupDeps = {}): CliCommand {
  return {
    path: ['entra', 'setup'],
    summary: 'Create or update the Entra app registration, federated credential and Graph permissions, and write upstream into the config.',
    options: {
      config: { type: 'string', short: 'c', description: 'Config file to read server.publicUrl and broker.downstream from and write upstream into (default: $GATEHOUSE_CONFIG, else gatehouse.yaml).' },
      federation: { type: 'string', description: 'Secretless option: managed-identity, aks or github.' },
      'managed-identity-client-id': { type: 'string', description: 'managed-identity: the user-assigned managed identity\'s client id.' },
      'aks-issuer': { type: 'string', description: 'aks: the cluster\'s OIDC issuer URL (az aks show --query oidcIssuerProfile.issuerUrl).' },
      namespace: { type: 'string', description: 'aks: namespace of the service account (default gatehouse).' },
      'service-account': { type: 'string', description: 'aks: service account name (default gatehouse).' },
      'github-repo': { type: 'string', description: 'github: OWNER/REPO whose workflows run Gatehouse.' },
      'github-environment': { type: 'string', description: 'github: the deployment environment (default: the ref instead).' },
      'github-ref': { type: 'string', description: 'github: the git ref (default refs/heads/main).' },
      tenant: { type: 'string', description: 'Tenant id (default: upstream.entra.tenantId, else the signed-in operator\'s tenant).' },
      'app-id': { type: 'string', description: 'Update this app registration (default: upstream.clientId, else the one named --name).' },
      name: { type: 'string', description: 'Display name of the app registration (default Gatehouse).' },
      'public-url': { type: 'string', description: 'Overrides server.publicUrl (the redirect URI is this + /callback).' },
      'pre-authorize': { type: 'string', multiple: true, description: 'Application id of a client allowed to use the API scope without a consent prompt (repeatable).' },
      'grant-admin-consent': { type: 'boolean', description: 'Also grant tenant-wide consent to the Graph permissions (needs an admin role).' },
      'sign-in': { type: 'string', description: 'azure-cli (an existing "az login", the default) or device-code.' },
      'graph-url': { type: 'string', description: 'Microsoft Graph base URL (default https://graph.microsoft.com; national clouds differ).' },
      authority: { type: 'string', description: 'Entra authority (default https://login.microsoftonline.com).' },
      'dry-run': { type: 'boolean', description: 'Read the current state, print the Graph requests that would change it and the upstream section; change nothing.' },
    },
    async run({ values, io }) {
      const file = text(values, 'config') ?? io.env.GATEHOUSE_CONFIG ?? 'gatehouse.yaml';
      const path = file.startsWith('/') ? file : `${io.cwd}/${file}`;
      const signIn = text(values, 'sign-in') ?? 'azure-cli';
      if (signIn !== 'azure-cli' && signIn !== 'device-code') throw new CliUsageError(`--sign-in must be azure-cli or device-code (got "${signIn}")`);
      const federation = federationFrom(values);
      const inputs = readSetupInputs(path, io.env);
      const publicUrlText = text(values, 'public-url') ?? inputs.publicUrl;
      if (!publicUrlText) throw new CliUsageError(`${file} has no server.publicUrl: set it, or pass --public-url`);
      const publicUrl = httpsUrl(publicUrlText, 'server.publicUrl');
      const tenantId = text(values, 'tenant') ?? inputs.tenantId;
      const dryRun = values['dry-run'] === true;

      const credential = withSignInAdvice(await (deps.credential ?? azureIdentityCredential)(signIn, tenantId, io), signIn);
      const graph = createGraphClient({
        baseUrl: httpsUrl(text(values, 'graph-url') ?? 'https://graph.microsoft.com', '--graph-url'),
        credential,
        dryRun,
        ...(deps.fetch ? { fetch: deps.fetch } : {}),
        onRequest: (request) => io.stdout(describeRequest(request)),
      });
      const appId = text(values, 'app-id') ?? inputs.appId;
      const result = await runEntraSetup(graph, {
        displayName: text(values, 'name') ?? 'Gatehouse',
        publicUrl,
        ...(tenantId ? { tenantId } : {}),
        ...(appId ? { appId } : {}),
        graphPermissions: inputs.graphPermissions,
        preAuthorizedClients: (values['pre-authorize'] as string[] | undefined) ?? [],
        federation,
        grantAdminConsent: values['grant-admin-consent'] === true,
        authority: httpsUrl(text(values, 'authority') ?? 'https://login.microsoftonline.com', '--authority'),
      });

      const writes = graph.requests.filter((request) => request.method !== 'GET').length;
      io.stdout(`\n${dryRun ? `Dry run: ${writes} change(s) would be sent` : `${writes} change(s) sent`}; application id ${result.appId} in tenant ${result.tenantId}.\n`);
      if (dryRun && result.appId === '00000000-0000-0000-0000-000000000000') io.stdout('00000000-0000-0000-0000-000000000000 stands for the id Graph assigns when the registration is created.\n');
      for (const note of result.notes) io.stdout(`note: ${note}\n`);
      for (const audience of inputs.otherAudiences) io.stdout(`note: broker.downstream audience ${audience} is not Microsoft Graph: add its delegated permissions yourself\n`);
      io.stdout(result.consented ? 'Graph permissions: consented for the whole tenant.\n' : `Graph permissions (${inputs.graphPermissions.join(', ')}) need admin consent (on-behalf-of cannot ask the user): ${result.adminConsentUrl}\n`);
      io.stdout(`\nupstream:\n${stringify(result.upstream).replace(/^/gm, '  ').trimEnd()}\n`);
      if (dryRun) {
        io.stdout(`\nDry run: ${file} not changed.\n`);
      } else {
        writeUpstreamSection(path, result.upstream);
        io.stdout(`\nWrote the upstream section into ${file}.\n`);
      }
      return 0;
    },
  };
}

export const entraSetupCommand = createEntraSetupCommand();
