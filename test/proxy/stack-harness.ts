import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { buildProtectedResourceMetadata, PRM_PATH } from '../../src/proxy/protected-resource-metadata.ts';
import type { TokenBroker } from '../../src/broker/types.ts';
import { startAuthorizationServer, type StartOptions, type TestServer } from '../authorization/harness.ts';
import { startTestGateway, type TestGateway } from './harness.ts';

/**
 * The authorization server and a gateway replica sharing its store, keys and public URL, in front of a v2 SDK
 * backend whose `whoami` verifies the gateway's identity assertion. MCP SDK clients discover through the resource
 * URL's origin (the authorization server's listener, which does not mount the gateway), so the gateway's RFC 9728
 * documents are served there too.
 */
export interface TestStack {
  server: TestServer;
  gateway: TestGateway;
  backend: McpBackend;
  close(): Promise<void>;
}

export interface StackOptions extends Omit<StartOptions, 'routes'> {
  /** Routes without `backend`: each gets the test backend. */
  routes?: Array<Record<string, unknown>>;
  broker?: TokenBroker;
}

export async function startTestStack(options: StackOptions = {}): Promise<TestStack> {
  let server: TestServer | undefined;
  const backend = await startMcpBackend({
    kind: 'v2-stateless',
    identity: () => ({ jwks: server!.ctx.keyring.publicJwks(), issuer: server!.publicUrl, audience: `${server!.publicUrl}/mcp` }),
  });
  const base = options.routes ?? [{ path: '/mcp', scopes: { 'mcp:tools': 'Use the tools of the test server' } }];
  const routes = base.map((route) => ({ backend: backend.url, ...route }));
  server = await startAuthorizationServer({ ...options, routes });
  const gateway = await startTestGateway({
    keyring: server.ctx.keyring,
    store: server.store,
    publicUrl: server.publicUrl,
    config: { routes, broker: options.extraConfig?.broker },
    ...(options.broker === undefined ? {} : { broker: options.broker }),
  });
  const documents = new Map(
    gateway.ctx.config.routes.map((route) => [`${PRM_PATH}${route.path}`, JSON.stringify(buildProtectedResourceMetadata(server!.publicUrl, route))]),
  );
  server.app.server.prependListener('request', (request, response) => {
    const document = documents.get(request.url ?? '') ?? (request.url === PRM_PATH ? documents.values().next().value : undefined);
    if (document !== undefined) response.writeHead(200, { 'content-type': 'application/json' }).end(document);
  });
  const started = server;
  return {
    server: started,
    gateway,
    backend,
    async close() {
      await gateway.close();
      await started.close();
      await backend.close();
    },
  };
}
