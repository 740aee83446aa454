import { configSchema, type DemoSettings, type GatehouseConfig } from './schema.ts';

/**
 * The local demo: what Gatehouse runs when started without a config file. Every part runs on this machine with no
 * cloud account — the gateway, a local OpenID Connect identity provider standing in for Entra ID, the sample Graph
 * MCP server and a demo directory API standing in for Microsoft Graph. Development only: `mode: demo` is refused
 * nowhere, but production settings (https, Secure cookies, no loopback CIMD) are relaxed here on purpose.
 */

export const DEMO_CLIENT_ID = 'gatehouse';
/** Path of the local workload-identity issuer on the identity provider's origin (the federated credential's issuer). */
export const DEMO_WORKLOAD_IDENTITY_PATH = '/workload-identity';
/** Scope of the gateway's own API at the local IdP, so the upstream access token can be exchanged on-behalf-of. */
export const DEMO_GATEWAY_API_SCOPE = 'api://gatehouse/access_as_user';
/**
 * The demo's MCP client for Enterprise-Managed Authorization: users sign in to it at the local IdP, which then issues
 * it ID-JAGs for Gatehouse. Its secret is generated per process (src/demo/run-demo.ts) unless the configuration
 * registers this client itself.
 */
export const DEMO_ENTERPRISE_CLIENT_ID = 'enterprise-chat';
/**
 * The client a workload of the demo's workload-identity issuer acts as (workload identity federation): a token the
 * issuer mints for Gatehouse's token endpoint (`POST <idp>/workload-identity/token`) is its only credential. The
 * running demo adds the trust and the client (src/demo/run-demo.ts) unless the configuration trusts that issuer itself.
 */
export const DEMO_WORKLOAD_CLIENT_ID = 'demo-workload';
/** Registrations per hour the demo allows a loopback client (production: `perIpPerHour` for every address). */
export const DEMO_LOOPBACK_REGISTRATIONS_PER_HOUR = 1000;

export interface DemoConfigOptions {
  /** Gateway port (default 8080); the public URL follows it. */
  port?: number;
  host?: string;
  /** Overrides the `http://localhost:<port>` public URL. */
  publicUrl?: string;
  demo?: Partial<DemoSettings>;
}

const DEFAULT_DEMO: DemoSettings = { identityProviderPort: 8081, graphServerPort: 8082, directoryApiPort: 8083 };

/**
 * The demo configuration as raw input (before validation), so a `mode: demo` file can override parts of it.
 * @internal used by loadConfig; others call demoConfig.
 */
export function demoConfigInput(options: DemoConfigOptions = {}): Record<string, unknown> {
  const port = options.port ?? 8080;
  const demo: DemoSettings = { ...DEFAULT_DEMO, ...options.demo };
  const identityProvider = `http://localhost:${demo.identityProviderPort}`;
  return {
    mode: 'demo',
    server: {
      host: options.host ?? '127.0.0.1',
      port,
      publicUrl: options.publicUrl ?? `http://localhost:${port}`,
    },
    upstream: {
      type: 'oidc',
      issuer: identityProvider,
      clientId: DEMO_CLIENT_ID,
      // Secretless, like production on Entra: the local IdP trusts assertions from the local workload-identity issuer.
      clientAuth: { method: 'federated', issuerUrl: `${identityProvider}${DEMO_WORKLOAD_IDENTITY_PATH}` },
      scopes: ['openid', 'profile', 'email', 'offline_access', DEMO_GATEWAY_API_SCOPE],
    },
    routes: [
      {
        path: '/mcp',
        backend: `http://127.0.0.1:${demo.graphServerPort}/mcp`,
        // The sample server's own body limit (as on /graph below).
        bodyLimitBytes: 1024 * 1024,
        scopes: {
          'mcp:tools': 'Use the tools of the sample Graph MCP server',
          'graph:read': 'Read your directory profile through the sample server',
        },
        // Both scopes up front: the 401 challenge names the required scopes, and clients such as VS Code ask for exactly
        // those, so a newcomer's first sign-in must already cover the demo's main tool (get_graph_user_details).
        requiredScopes: ['mcp:tools', 'graph:read'],
        tools: {
          // The per-tool policies still show how a deployment can ask for more on the tools that read the profile.
          get_graph_user_details: { scopes: ['graph:read'] },
          me: { scopes: ['graph:read'] },
          hello: {},
          echo: {},
          status: {},
        },
        downstream: ['graph'],
      },
      {
        // The sample server's plain HTTP endpoints (GET /graph/me, /graph/hello, POST /graph/echo, …) behind the same
        // sign-in: a REST API is protected exactly like an MCP server, with its own resource URL and tokens. The
        // backend is the server's REST base path, never its root: the root also holds the MCP endpoints, which an
        // HTTP route would expose without the MCP route's per-tool policy and tools/list filter.
        path: '/graph',
        type: 'http',
        backend: `http://127.0.0.1:${demo.graphServerPort}/api`,
        // The sample server's own body limit: a larger upload gets the gateway's 413, not a dropped connection (a
        // backend refusing a body that way leaves the gateway only a 502 to give).
        bodyLimitBytes: 1024 * 1024,
        scopes: { 'graph:read': 'Read your directory profile through the sample server' },
        requiredScopes: ['graph:read'],
        downstream: ['graph'],
      },
    ],
    broker: {
      downstream: [
        { name: 'graph', audience: `http://localhost:${demo.directoryApiPort}`, scopes: ['User.Read'], grant: 'on-behalf-of' },
      ],
    },
    authorization: {
      clientMetadataDocuments: { allowLoopback: true },
      // A developer reconnecting clients on this machine would spend the production budget (30 an hour, kept in the
      // store across restarts) in one afternoon; only loopback peers get the larger one.
      dynamicRegistration: { perLoopbackIpPerHour: DEMO_LOOPBACK_REGISTRATIONS_PER_HOUR },
      // The local IdP doubles as the enterprise IdP of Enterprise-Managed Authorization (ID-JAG).
      enterpriseIdps: [{ issuer: identityProvider, clients: [DEMO_ENTERPRISE_CLIENT_ID] }],
    },
    dev: { insecureCookies: true },
    demo,
  };
}

/** A complete, valid configuration for the local demo. The `start` command and tests call this. */
export function demoConfig(options: DemoConfigOptions = {}): GatehouseConfig {
  return configSchema.parse(demoConfigInput(options));
}

/**
 * The routes whose backend is on the demo's sample-server port: the sample server starts only for them (run-demo.ts),
 * and only then is that port one of the demo's listeners (config-rules.ts). A URL naming no port connects to its
 * scheme's.
 */
export function sampleServerRoutes(config: Pick<GatehouseConfig, 'routes' | 'demo'>): GatehouseConfig['routes'] {
  return config.routes.filter((route) => {
    const url = URL.parse(route.backend);
    return url !== null && Number(url.port || (url.protocol === 'https:' ? 443 : 80)) === config.demo.graphServerPort;
  });
}
