import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { demoConfig } from '../../src/config/demo-defaults.ts';
import { loadConfig } from '../../src/config/load.ts';
import { resolvePublicUrl } from '../../src/config/public-url.ts';
import { checkConfigRules } from '../../src/config/config-rules.ts';

describe('demo defaults', () => {
  it('are a complete configuration for the local stand-ins', () => {
    const config = demoConfig();
    assert.equal(config.mode, 'demo');
    assert.equal(config.server.publicUrl, 'http://localhost:8080');
    assert.equal(config.upstream?.type, 'oidc');
    assert.equal(config.upstream?.issuer, 'http://localhost:8081');
    assert.equal(config.upstream?.clientId, 'gatehouse');
    assert.equal(config.upstream?.clientAuth.method, 'federated');
    const clientAuth = config.upstream?.clientAuth;
    assert.match(clientAuth?.method === 'federated' ? (clientAuth.issuerUrl ?? '') : '', /^http:\/\/localhost:8081\//);
    const route = config.routes[0];
    assert.equal(route?.path, '/mcp');
    assert.equal(route?.backend, 'http://127.0.0.1:8082/mcp');
    assert.deepEqual(Object.keys(route?.tools ?? {}).sort(), ['echo', 'get_graph_user_details', 'hello', 'me', 'status']);
    assert.deepEqual(route?.tools.get_graph_user_details?.scopes, ['graph:read']);
    assert.equal(config.broker.downstream[0]?.name, 'graph');
    assert.equal(config.broker.downstream[0]?.audience, 'http://localhost:8083');
    assert.equal(config.dev.insecureCookies, true);
    assert.equal(config.authorization.clientMetadataDocuments.allowLoopback, true);
    assert.deepEqual(checkConfigRules(config).problems, []);
  });

  it('follow the ports given', () => {
    const config = demoConfig({ port: 9000, demo: { identityProviderPort: 9001, graphServerPort: 9002, directoryApiPort: 9003 } });
    assert.equal(resolvePublicUrl(config), 'http://localhost:9000');
    assert.equal(config.upstream?.issuer, 'http://localhost:9001');
    assert.equal(config.routes[0]?.backend, 'http://127.0.0.1:9002/mcp');
    assert.equal(config.broker.downstream[0]?.audience, 'http://localhost:9003');
  });

  it('refuse two stand-ins (or the gateway and one) given the same port, naming both and their settings', () => {
    const { problems } = checkConfigRules(demoConfig({ port: 9001, demo: { identityProviderPort: 9001, graphServerPort: 9002, directoryApiPort: 9002 } }));
    assert.deepEqual(problems, [
      'demo: the gateway (server.port, --port, GATEHOUSE_PORT) and the local identity provider (GATEHOUSE_DEMO_IDP_PORT) are both given port 9001 — give each its own',
      'demo: the sample Graph MCP server (GATEHOUSE_DEMO_GRAPH_PORT) and the demo directory API (GATEHOUSE_DEMO_DIRECTORY_PORT) are both given port 9002 — give each its own',
    ]);
    assert.deepEqual(checkConfigRules(demoConfig({ port: 0, demo: { identityProviderPort: 9001, graphServerPort: 0, directoryApiPort: 0 } })).problems, []);
    // The sample server starts only for a route on its port: a gateway on that port with routes elsewhere is fine.
    const elsewhere = demoConfig({ port: 8082, demo: { identityProviderPort: 8081, graphServerPort: 8082, directoryApiPort: 8083 } });
    const routes = elsewhere.routes.map((route, index) => ({ ...route, backend: `http://127.0.0.1:${9990 + index}/mcp` }));
    assert.deepEqual(checkConfigRules({ ...elsewhere, routes }).problems, []);
    // A backend URL naming its scheme's port (or none) is on that port, as the demo starts the sample server.
    const onDefault = demoConfig({ port: 8080, demo: { identityProviderPort: 8081, graphServerPort: 80, directoryApiPort: 80 } });
    const defaultRoutes = onDefault.routes.map((route, index) => ({ ...route, backend: index === 0 ? 'http://127.0.0.1:80/mcp' : `http://127.0.0.1:${9990 + index}/api` }));
    assert.match(checkConfigRules({ ...onDefault, routes: defaultRoutes }).problems.join('\n'), /sample Graph MCP server .* and the demo directory API .* are both given port 80/);
  });

  it('are what loadConfig returns without a file, with the public URL following GATEHOUSE_PORT or --port', () => {
    const plain = loadConfig({ env: {}, cwd: '/srv/gatehouse' });
    assert.equal(plain.file, undefined);
    assert.deepEqual(plain.config, { ...demoConfig(), store: { ...demoConfig().store, sqlitePath: '/srv/gatehouse/.gatehouse/gatehouse.db' } });
    assert.equal(loadConfig({ env: { GATEHOUSE_PORT: '9100' }, cwd: '/tmp' }).publicUrl, 'http://localhost:9100');
    const flagged = loadConfig({ env: { GATEHOUSE_PORT: '9100' }, cwd: '/tmp', flags: { port: 9200 } });
    assert.equal(flagged.config.server.port, 9200);
    assert.equal(flagged.publicUrl, 'http://localhost:9200');
  });
});

describe('resolvePublicUrl', () => {
  it('drops trailing slashes and keeps a path prefix', () => {
    const base = demoConfig();
    assert.equal(resolvePublicUrl({ server: { ...base.server, publicUrl: 'https://GW.example.com/' } }), 'https://gw.example.com');
    assert.equal(resolvePublicUrl({ server: { ...base.server, publicUrl: 'https://gw.example.com/auth//' } }), 'https://gw.example.com/auth');
    assert.equal(resolvePublicUrl({ server: { ...base.server, publicUrl: undefined, port: 8181 } }), 'http://localhost:8181');
  });
});
