import { basename, dirname, extname, join } from 'node:path';
import { SIGNED_OUT_PATH } from '../web/paths.ts';
import type { Logger } from 'pino';
import { startGraphServer, type RunningGraphServer } from '../../examples/graph-server/graph-server.ts';
import { JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT } from '../protocol/oauth-urns.ts';
import { DEMO_ENTERPRISE_CLIENT_ID, DEMO_WORKLOAD_CLIENT_ID, DEMO_WORKLOAD_IDENTITY_PATH, sampleServerRoutes } from '../config/demo-defaults.ts';
import type { GatehouseConfig, RouteConfig } from '../config/schema.ts';
import type { Random } from '../runtime/random.ts';
import { startDirectoryApi, type RunningDirectoryApi } from './directory-api/directory-api.ts';
import { directoryUsersFrom } from './directory-api/local-users.ts';
import { startLocalIdentityProvider, type LocalIdentityProvider } from './local-idp/local-identity-provider.ts';
import type { LocalUser } from './local-idp/users.ts';
import { ConfigError } from '../config/config-error.ts';

/**
 * DEVELOPMENT ONLY — the local stand-ins `mode: demo` runs next to the gateway, so the whole flow works on one machine
 * with no cloud account: the local identity provider (with the workload-identity issuer mounted under it, which the
 * gateway's federated client credential trusts), the demo directory API answering like Microsoft Graph, and the
 * sample Graph MCP server behind the gateway's route. Never started in production mode.
 */

/** The sample server's client at the gateway: it exchanges the identity assertion it receives for a Graph token. */
export const DEMO_BACKEND_CLIENT_ID = 'graph-server';

export interface DemoComponentsOptions {
  config: GatehouseConfig;
  /** The gateway's issuer (public URL). */
  publicUrl: string;
  random: Random;
  logger: Logger;
}

export interface DemoComponents {
  identityProvider: LocalIdentityProvider;
  directoryApi: RunningDirectoryApi;
  graphServer: RunningGraphServer | undefined;
  /** The route the sample server is behind. */
  graphRoute: RouteConfig | undefined;
  users: readonly LocalUser[];
  /**
   * The pre-registered client the sample server authenticates with at `/token` (RFC 8693). Its secret is new on every
   * start and lives only in this process: the sample server is started here, so nobody has to configure it.
   */
  backendClient: GatehouseConfig['authorization']['clients'][number];
  /** The demo's Enterprise-Managed Authorization client, when the configuration did not register it itself. */
  enterpriseClient: GatehouseConfig['authorization']['clients'][number] | undefined;
  /**
   * Workload identity federation in the demo: the local workload-identity issuer trusted for `demo-workload`, and that
   * client; undefined when the configuration already trusts the issuer.
   */
  workloadTrust:
    | { trust: GatehouseConfig['authorization']['workloadIdentities'][number]; client: GatehouseConfig['authorization']['clients'][number] }
    | undefined;
  close(): Promise<void>;
}

/**
 * True when the upstream is the demo's own local identity provider. A `mode: demo` file may name another upstream
 * (your Entra tenant); then the stand-ins, which only trust the local IdP's tokens, are not started.
 */
export function usesLocalIdentityProvider(config: GatehouseConfig): boolean {
  const { upstream, demo } = config;
  return config.mode === 'demo' && upstream?.type === 'oidc' && upstream.issuer === `http://localhost:${demo.identityProviderPort}`;
}

/**
 * With another upstream the local identity provider is not started, so it cannot be the enterprise IdP of the demo's
 * defaults either (nor is its `enterprise-chat` client registered): that trust is dropped, whatever else is kept.
 */
export function withoutLocalIdentityProvider(config: GatehouseConfig): GatehouseConfig {
  const localIssuer = `http://localhost:${config.demo.identityProviderPort}`;
  const enterpriseIdps = config.authorization.enterpriseIdps.filter((idp) => idp.issuer !== localIssuer);
  return { ...config, authorization: { ...config.authorization, enterpriseIdps } };
}

/** Starts the stand-ins in dependency order (IdP → directory API → sample server); stops what started on failure. */
export async function startDemoComponents(options: DemoComponentsOptions): Promise<DemoComponents> {
  const { config, publicUrl, random, logger } = options;
  const { demo, upstream } = config;
  if (!upstream?.issuer || !usesLocalIdentityProvider(config)) throw new Error('the demo components run only in mode: demo with the local identity provider');
  const started: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    for (const component of started.reverse()) await component.close().catch(() => {});
  };
  try {
    const { enterpriseClient, ssoClients } = enterpriseClientsOf(config, upstream.issuer, random.token(32));
    const identityProvider = await startLocalIdentityProvider({
      port: demo.identityProviderPort,
      host: '127.0.0.1',
      issuer: upstream.issuer,
      ...(demo.usersFile ? { usersFile: demo.usersFile } : {}),
      gateway: { clientId: upstream.clientId, redirectUris: [`${publicUrl}/callback`], postLogoutRedirectUris: [`${publicUrl}${SIGNED_OUT_PATH}`] },
      downstreamAudiences: config.broker.downstream.map((entry) => entry.audience),
      workloadIdentityPath: DEMO_WORKLOAD_IDENTITY_PATH,
      enterprise: { clients: ssoClients, audiences: [publicUrl] },
      workloadAudiences: [`${publicUrl}/token`],
      // Beside the SQLite store the gateway keeps across restarts: the IdP keeps its key and sessions too, or the
      // gateway's upstream sessions and cached downstream tokens outlived the IdP that issued them.
      // Named after the database, so two demos on two databases in one directory keep theirs apart.
      ...(config.store.type === 'sqlite' && config.store.sqlitePath !== ':memory:' ? { stateFile: demoIdpStateFile(config.store.sqlitePath) } : {}),
      random,
      logger: logger.child({ component: 'local-idp' }),
    });
    started.push(identityProvider);

    // The directory API answers for the downstream the demo route's backend may use (the first one, `graph`).
    const graphRoutes = sampleServerRoutes(config);
    const graphRoute = graphRoutes.find((route) => route.type === 'mcp') ?? graphRoutes[0];
    const downstream = config.broker.downstream.find((entry) => graphRoute?.downstream.includes(entry.name)) ?? config.broker.downstream[0];
    if (!downstream) throw new ConfigError(['broker.downstream: mode: demo needs an entry for the directory API']);
    const directoryApi = await startDirectoryApi({
      port: demo.directoryApiPort,
      host: '127.0.0.1',
      issuer: identityProvider.issuer,
      audience: downstream.audience,
      users: directoryUsersFrom(identityProvider.users),
    });
    started.push(directoryApi);

    const backendClient = sampleServerClient(downstream.name, random.token(32));
    let graphServer: RunningGraphServer | undefined;
    if (graphRoute) {
      graphServer = await startGraphServer({
        port: demo.graphServerPort,
        host: '127.0.0.1',
        gatewayIssuer: publicUrl,
        // Each route forwarding to the sample server is an audience on its own surface only: MCP routes on the MCP
        // endpoints, plain HTTP routes on the REST endpoints (an HTTP route's token must never reach the tools).
        audience: graphRoutes.filter((route) => route.type === 'mcp').map((route) => publicUrl + route.path),
        httpAudience: graphRoutes.filter((route) => route.type === 'http').map((route) => publicUrl + route.path),
        jwksUrl: `${publicUrl}/jwks`,
        graphBaseUrl: directoryApi.url,
        // `obo` routes forward a directory token instead of the assertion; `assertion` routes let the server exchange it.
        tokenSource: graphRoute.identity.mode === 'obo' ? 'obo' : 'broker',
        broker: {
          tokenUrl: `${publicUrl}/token`,
          clientId: backendClient.clientId,
          clientSecret: backendClient.clientSecret,
          resource: downstream.audience,
          scope: downstream.scopes.join(' '),
        },
        logger: logger.child({ component: 'graph-server' }),
      });
      started.push(graphServer);
    }
    const workloadTrust = demoWorkloadTrust(config, identityProvider.workloadIdentity?.issuer);
    return { identityProvider, directoryApi, graphServer, graphRoute, users: identityProvider.users, backendClient, enterpriseClient, workloadTrust, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * The demo's additions to its own configuration: the sample server's client at `/token` (its secret is generated
 * for this process), and — when no admin is configured — the local IdP's `gatehouse-admins` group as console admins.
 */
export function withDemoSettings(config: GatehouseConfig, demo: DemoRegistrations): GatehouseConfig {
  const noAdmins = config.admin.users.length === 0 && config.admin.groups.length === 0;
  return {
    ...config,
    authorization: {
      ...config.authorization,
      clients: [...config.authorization.clients, demo.backendClient, ...[demo.enterpriseClient, demo.workloadTrust?.client].filter((client) => client !== undefined)],
      workloadIdentities: [...config.authorization.workloadIdentities, ...(demo.workloadTrust === undefined ? [] : [demo.workloadTrust.trust])],
    },
    admin: noAdmins ? { ...config.admin, groups: [DEMO_ADMIN_GROUP] } : config.admin,
  };
}

const DEMO_ADMIN_GROUP = 'gatehouse-admins';

/** What the demo registers in its own configuration at start (withDemoSettings). */
export type DemoRegistrations = Pick<DemoComponents, 'backendClient' | 'enterpriseClient' | 'workloadTrust'>;

/** The client the sample server authenticates with at `/token` (RFC 8693), with its secret (made per process). */
function sampleServerClient(downstream: string, clientSecret: string | undefined): DemoComponents['backendClient'] {
  return {
    clientId: DEMO_BACKEND_CLIENT_ID,
    ...(clientSecret === undefined ? {} : { clientSecret }),
    name: 'Sample Graph MCP server',
    redirectUris: [],
    grantTypes: [TOKEN_EXCHANGE_GRANT],
    allowedDownstream: [downstream],
  };
}

/**
 * What a running demo of this configuration registers, without the secrets it makes per process: for the admin CLI,
 * which reads the configuration, not the running demo — it listed none of the clients the console showed, and could
 * not show or revoke `graph-server`. Empty outside the demo with its local identity provider.
 */
export function demoRegistrations(config: GatehouseConfig): DemoRegistrations | undefined {
  const issuer = config.upstream?.issuer;
  if (!usesLocalIdentityProvider(config) || issuer === undefined) return undefined;
  const graphRoutes = sampleServerRoutes(config);
  const graphRoute = graphRoutes.find((route) => route.type === 'mcp') ?? graphRoutes[0];
  const downstream = config.broker.downstream.find((entry) => graphRoute?.downstream.includes(entry.name)) ?? config.broker.downstream[0];
  if (downstream === undefined) return undefined;
  return {
    backendClient: sampleServerClient(downstream.name, undefined),
    enterpriseClient: enterpriseClientsOf(config, issuer, undefined).enterpriseClient,
    // The local identity provider's workload-identity issuer (local-identity-provider.ts names it so).
    workloadTrust: demoWorkloadTrust(config, `${issuer}/${DEMO_WORKLOAD_IDENTITY_PATH.replace(/^\/+|\/+$/g, '')}`),
  };
}

/**
 * The demo's workload identity federation: tokens of the local workload-identity issuer for the gateway's own
 * service account in namespace `gatehouse` act as `demo-workload`, a public client whose only credential is the token.
 */
function demoWorkloadTrust(config: GatehouseConfig, issuer: string | undefined): DemoComponents['workloadTrust'] {
  if (issuer === undefined || config.authorization.workloadIdentities.some((trusted) => trusted.issuer === issuer)) return undefined;
  const scopes = [...new Set(config.routes.flatMap((route) => route.requiredScopes))];
  return {
    trust: {
      issuer,
      rules: [{ subject: 'system:serviceaccount:gatehouse:*', claims: { 'kubernetes.io/namespace': 'gatehouse' }, clientId: DEMO_WORKLOAD_CLIENT_ID, scopes }],
    },
    client: { clientId: DEMO_WORKLOAD_CLIENT_ID, name: 'Demo workload (workload identity federation)', redirectUris: [], grantTypes: [JWT_BEARER_GRANT], allowedDownstream: [] },
  };
}

/**
 * The clients users sign in to at the local IdP as their enterprise IdP: every client with a secret that the
 * configuration lets present the local IdP's ID-JAGs, registered there with the same secret. The demo's own
 * (`enterprise-chat`) is added, with a secret made for this process, unless the configuration registers it.
 */
function enterpriseClientsOf(config: GatehouseConfig, localIssuer: string, clientSecret: string | undefined) {
  const trusted = new Set(config.authorization.enterpriseIdps.filter((idp) => idp.issuer === localIssuer).flatMap((idp) => idp.clients));
  const configured = config.authorization.clients.filter((client) => trusted.has(client.clientId));
  const enterpriseClient = trusted.has(DEMO_ENTERPRISE_CLIENT_ID) && !configured.some((client) => client.clientId === DEMO_ENTERPRISE_CLIENT_ID)
    ? { clientId: DEMO_ENTERPRISE_CLIENT_ID, ...(clientSecret === undefined ? {} : { clientSecret }), name: 'Enterprise chat (demo)', redirectUris: [], grantTypes: [JWT_BEARER_GRANT], allowedDownstream: [] }
    : undefined;
  const ssoClients = [...configured, ...(enterpriseClient === undefined ? [] : [enterpriseClient])].flatMap((client) =>
    client.clientSecret === undefined ? [] : [{ clientId: client.clientId, clientSecret: client.clientSecret, name: client.name }],
  );
  return { enterpriseClient, ssoClients };
}

/** A demo component's port taken is the same one-line usage error as the gateway's own port (exit 2), naming the fix. */
export function demoStartError(error: unknown, demo: GatehouseConfig['demo']): unknown {
  const failure = error as (NodeJS.ErrnoException & { port?: number }) | null;
  if (failure?.code !== 'EADDRINUSE') return error;
  const components = [
    { port: demo.identityProviderPort, name: 'the local identity provider', variable: 'GATEHOUSE_DEMO_IDP_PORT' },
    { port: demo.graphServerPort, name: 'the sample Graph MCP server', variable: 'GATEHOUSE_DEMO_GRAPH_PORT' },
    { port: demo.directoryApiPort, name: 'the demo directory API', variable: 'GATEHOUSE_DEMO_DIRECTORY_PORT' },
  ];
  const component = components.find((candidate) => candidate.port === failure.port);
  const fix = component ? `set ${component.variable} to a free port` : 'change the demo ports';
  return new DemoPortInUseError(`port ${failure.port ?? '?'} (${component?.name ?? 'a local demo component'}) is in use — stop the other process or ${fix}`);
}

/** Exit code 2 like every usage mistake (src/cli/main.ts reads `exitCode`); one line, no stack trace. */
export class DemoPortInUseError extends Error {
  readonly exitCode = 2;
}

/** `./.gatehouse/gatehouse.db` → `./.gatehouse/gatehouse-demo-idp.json`: the local IdP's key and records (0600). */
export function demoIdpStateFile(sqlitePath: string): string {
  return join(dirname(sqlitePath), `${basename(sqlitePath, extname(sqlitePath))}-demo-idp.json`);
}
