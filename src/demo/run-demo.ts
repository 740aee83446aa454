import { basename, dirname, extname, join } from 'node:path';
import { SIGNED_OUT_PATH } from '../web/paths.ts';
import type { Logger } from 'pino';
import { startGraphServer, type RunningGraphServer } from '../../examples/graph-server/graph-server.ts';
import { DEMO_WORKLOAD_IDENTITY_PATH, sampleServerRoutes } from '../config/demo-defaults.ts';
import { demoWorkloadTrust, enterpriseClientsOf, sampleServerClient, usesLocalIdentityProvider, type DemoRegistrations } from './demo-registrations.ts';

// What the gateway's assembly reads of the demo beside starting it.
export { usesLocalIdentityProvider, withDemoSettings, withoutLocalIdentityProvider } from './demo-registrations.ts';
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

export interface DemoComponentsOptions {
  config: GatehouseConfig;
  /** The gateway's issuer (public URL). */
  publicUrl: string;
  random: Random;
  logger: Logger;
}

export interface DemoComponents extends DemoRegistrations {
  identityProvider: LocalIdentityProvider;
  directoryApi: RunningDirectoryApi;
  graphServer: RunningGraphServer | undefined;
  /** The route the sample server is behind. */
  graphRoute: RouteConfig | undefined;
  users: readonly LocalUser[];
  close(): Promise<void>;
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
