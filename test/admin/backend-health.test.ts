import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { probeBackend, probeBackends } from '../../src/admin/backend-health.ts';
import { configSchema } from '../../src/config/schema.ts';

/**
 * The overview's backend probe as an attacker would use it: it must reach only the configured URL (a backend's
 * redirect is not followed to, say, a metadata address), stay bounded when a backend never answers, and send nothing
 * that acts or authenticates.
 */
describe('backend probe', () => {
  const seen: Array<{ server: string; method: string | undefined; headers: IncomingHttpHeaders }> = [];
  let redirecting: Server;
  let target: Server;
  let silent: Server;
  const urlOf = (server: Server, path: string) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  const listen = (server: Server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  before(async () => {
    target = createServer((req, res) => {
      seen.push({ server: 'target', method: req.method, headers: req.headers });
      res.end();
    });
    await listen(target);
    redirecting = createServer((req, res) => {
      seen.push({ server: 'redirecting', method: req.method, headers: req.headers });
      res.writeHead(302, { location: urlOf(target, '/latest/meta-data') }).end();
    });
    silent = createServer(() => undefined);
    await Promise.all([listen(redirecting), listen(silent)]);
  });
  after(async () => {
    silent.closeAllConnections();
    await Promise.all([target, redirecting, silent].map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it('does not follow a redirect, and sends a HEAD without credentials', async () => {
    assert.deepEqual(await probeBackend(fetch, urlOf(redirecting, '/mcp'), 2_000), { state: 'reachable', status: 302 });
    assert.deepEqual(seen.map(({ server }) => server), ['redirecting']);
    assert.equal(seen[0]?.method, 'HEAD');
    assert.equal(seen[0]?.headers.authorization, undefined);
  });

  it('gives up on backends that never answer, all at once, each within its own deadline', async () => {
    const routes = ['/a', '/b', '/c', '/d'].map((path) => configSchema.parse({ routes: [{ path, backend: urlOf(silent, '/mcp') }] }).routes[0]!);
    const results = await probeBackends(fetch, routes, 100);
    assert.deepEqual([...results.values()], routes.map(() => ({ state: 'unreachable' })));
  });
});
