import { DEMO_ENTERPRISE_CLIENT_ID, DEMO_WORKLOAD_CLIENT_ID, DEMO_WORKLOAD_IDENTITY_PATH, sampleServerRoutes } from '../config/demo-defaults.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import { JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT } from '../protocol/oauth-urns.ts';

/**
 * What the demo adds to its own configuration — the clients it registers, the trust it adds, its console admins —
 * computed from the configuration alone: the running demo (run-demo.ts) adds them with the secrets it makes, and the
 * admin CLI lists them without, loading none of the stand-ins (the identity provider, the sample server, the SDKs).
 */

/** The sample server's client at the gateway: it exchanges the identity assertion it receives for a Graph token. */
export const DEMO_BACKEND_CLIENT_ID = 'graph-server';

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
export interface DemoRegistrations {
  /**
   * The pre-registered client the sample server authenticates with at `/token` (RFC 8693). Its secret is new on every
   * start and lives only in the demo's process: the sample server is started there, so nobody has to configure it.
   */
  backendClient: ClientConfig;
  /** The demo's Enterprise-Managed Authorization client, when the configuration did not register it itself. */
  enterpriseClient: ClientConfig | undefined;
  /**
   * Workload identity federation in the demo: the local workload-identity issuer trusted for `demo-workload`, and that
   * client; undefined when the configuration already trusts the issuer.
   */
  workloadTrust: { trust: GatehouseConfig['authorization']['workloadIdentities'][number]; client: ClientConfig } | undefined;
}

type ClientConfig = GatehouseConfig['authorization']['clients'][number];

/** The client the sample server authenticates with at `/token` (RFC 8693), with its secret (made per process). */
export function sampleServerClient(downstream: string, clientSecret: string | undefined): ClientConfig {
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
export function demoWorkloadTrust(config: GatehouseConfig, issuer: string | undefined): DemoRegistrations['workloadTrust'] {
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
export function enterpriseClientsOf(config: GatehouseConfig, localIssuer: string, clientSecret: string | undefined) {
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
