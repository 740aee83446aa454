import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backendBase, backendUrlFor } from '../../src/proxy/backend-path.ts';
import { createTestKeyring, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * A plain HTTP route must never let a client reach a backend path outside the route's base path: every traversal
 * spelling (dot segments raw or percent-encoded, backslashes, double encoding, `;` parameters, NUL) is refused with a
 * 400 JSON error, and the backend — which records every path it receives — never sees a path outside the base.
 */
const keyring = createTestKeyring();
let gateway: TestGateway;
let backend: Server;
let backendOrigin = '';
/** The raw request target of every request the backend received. */
const received: string[] = [];

before(async () => {
  backend = createServer((req, res) => {
    received.push(req.url ?? '');
    const asked = new URL(req.url ?? '/', 'http://backend');
    if (asked.pathname === '/base/redirect') {
      // Answers with the Location (and, on a 201, the Content-Location) the test asks for.
      const to = asked.searchParams.get('to')!.replace('{origin}', backendOrigin);
      const created = asked.searchParams.has('created');
      res.writeHead(created ? 201 : 302, created ? { location: to, 'content-location': to } : { location: to }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(req.url);
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  backendOrigin = origin;
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        { path: '/api', type: 'http', backend: `${origin}/base` },
        // Nested under /api, on the backend path /api's base path leads to, with its own audience.
        { path: '/api/admin', type: 'http', backend: `${origin}/base/admin` },
        { path: '/mcp', backend: `${origin}/mcp` },
      ],
    },
  });
});
after(async () => {
  await gateway?.close();
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

/** A GET with the request target sent exactly as written (fetch would normalise dot segments first). */
function rawGet(target: string, bearer: string): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(gateway.url);
    const req = request({ host: url.hostname, port: url.port, path: target, headers: { authorization: `Bearer ${bearer}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'] ?? '', body }));
    });
    req.once('error', reject);
    req.end();
  });
}

/**
 * The path as the most lenient backend could understand it: decoded until stable, backslashes as slashes,
 * `;parameters` dropped (Tomcat), cut at NUL, dot segments resolved.
 */
function leniently(target: string): string {
  let path = target.split('?')[0] ?? '';
  for (let i = 0; i < 4; i++) {
    try {
      path = decodeURIComponent(path);
    } catch {
      break;
    }
  }
  path = path.split('\0')[0]!.replaceAll('\\', '/');
  path = path.split('/').map((segment) => segment.split(';')[0]).join('/');
  return posix.normalize(path);
}

const bearer = () => mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/api` });

describe('plain HTTP route: the backend path stays under the base path', () => {
  const escapes = [
    '/api/../secret',
    '/api/%2e%2e/secret',
    '/api/%2E%2E/secret',
    '/api/.%2e/secret',
    '/api/%2e./secret',
    '/api/..\\secret',
    '/api/..%5csecret',
    '/api/..%5Csecret',
    '/api/%252e%252e/secret',
    '/api/%252e%252e%252fsecret',
    '/api//..//..//secret',
    '/api/..;/secret',
    '/api/..;x=1/secret',
    '/api/%2e%2e;/secret',
    '/api/..%00/secret',
    '/api/x%00/../../secret',
    '/api/x/%2e%2e/%2e%2e/secret',
    '/api/..%2fsecret',
    '/api/%2e%2e%2fsecret',
    '/api/../mcp',
    '/api/%zz',
  ];
  for (const target of escapes) {
    it(`refuses ${target} with 400 and the backend never sees it`, async () => {
      const before = received.length;
      const answer = await rawGet(target, await bearer());
      assert.equal(answer.status, 400, answer.body);
      assert.match(answer.contentType, /^application\/json/);
      assert.equal((JSON.parse(answer.body) as { error: string }).error, 'invalid_request');
      assert.equal(received.length, before, `the backend received ${received.slice(before).join(', ')}`);
    });
  }

  const allowed: Array<[string, string]> = [
    ['/api', '/base'],
    ['/api/', '/base/'],
    ['/api/hello/world?x=1&y=../../z', '/base/hello/world?x=1&y=../../z'],
    ['/api/a/./b/../c', '/base/a/c'],
    ['/api/a/%2e%2e/c', '/base/c'],
    ['/api//twice//slashed', '/base/twice/slashed'],
    ['/api/caf%C3%A9/a%20b', '/base/caf%C3%A9/a%20b'],
    ['/api/matrix;v=1/x', '/base/matrix;v=1/x'],
    ['/api/100%25', '/base/100%25'],
  ];
  for (const [target, expected] of allowed) {
    it(`forwards ${target} as ${expected}`, async () => {
      const answer = await rawGet(target, await bearer());
      assert.equal(answer.status, 200, answer.body);
      assert.equal(answer.body, expected);
    });
  }

  // The router picks /api from the path as sent; resolved, these lie under /api/admin, whose backend path /api's base
  // leads to: a token for /api reached it, never checked for /api/admin's audience.
  for (const target of ['/api/./admin/secret', '/api//admin/secret', '/api/x/../admin/secret', '/api/x/%2e%2e/admin/secret', '/api/Admin/secret', '/api/./admin', '/api/admin;x=1/secret', '/api/admin%3b/secret', '/api/admin./secret', '/api/admin%20/secret', '/api/;x/admin/secret', '/api/;/admin/secret']) {
    it(`refuses ${target}, which resolves into the route /api/admin, with 400, and the backend never sees it`, async () => {
      const before = received.length;
      const answer = await rawGet(target, await bearer());
      assert.equal(answer.status, 400, answer.body);
      assert.equal((JSON.parse(answer.body) as { error: string }).error, 'invalid_request');
      assert.equal(received.length, before, `the backend received ${received.slice(before).join(', ')}`);
    });
  }

  it('a nested route is reached by its own path, with a token for it alone', async () => {
    assert.equal((await rawGet('/api/admin/secret', await bearer())).status, 401, "a token for /api is not one for /api/admin");
    const admin = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/api/admin` });
    const answer = await rawGet('/api/admin/secret', admin);
    assert.deepEqual([answer.status, answer.body], [200, '/base/admin/secret']);
    assert.equal((await rawGet('/api/administrator', await bearer())).status, 200, 'a sibling path that only begins alike is /api\'s');
  });

  it('the backend never received a path outside the base', () => {
    assert.ok(received.length >= allowed.length);
    for (const target of received) {
      const path = leniently(target);
      assert.ok(path === '/base' || path.startsWith('/base/'), `${target} is ${path} to a lenient backend`);
    }
  });
});

describe('backendUrlFor', () => {
  it('joins below a root base path and below a route at /', () => {
    const root = backendBase('http://api.internal:3001');
    assert.equal(backendUrlFor(root, '/rest', '/rest'), 'http://api.internal:3001/');
    assert.equal(backendUrlFor(root, '/rest', '/rest/x?y'), 'http://api.internal:3001/x?y');
    const nested = backendBase('http://api.internal:3001/v1/');
    assert.equal(backendUrlFor(nested, '/', '/a/b/'), 'http://api.internal:3001/v1/a/b/');
    assert.equal(backendUrlFor(nested, '/', '/a/..'), 'http://api.internal:3001/v1/');
    assert.throws(() => backendUrlFor(nested, '/', '/..'), /leaves this route/);
    assert.throws(() => backendUrlFor(nested, '/rest', '/restricted/x'), /leaves this route/);
    assert.throws(() => backendUrlFor(nested, '/rest', 'http://evil.example/x'), /must be absolute/);
  });
});

describe('plain HTTP route: methods', () => {
  it('refuses TRACE (it would echo the request, token and all) with 405 naming the methods forwarded, before the backend', async () => {
    const before = received.length;
    for (const target of ['/api', '/api/x']) {
      const answer = await new Promise<{ status: number; allow: string; body: string }>((resolve, reject) => {
        const url = new URL(gateway.url);
        const req = request({ method: 'TRACE', host: url.hostname, port: url.port, path: target, headers: { authorization: 'Bearer x' } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.once('end', () => resolve({ status: res.statusCode ?? 0, allow: String(res.headers.allow), body }));
        });
        req.once('error', reject);
        req.end();
      });
      assert.equal(answer.status, 405, answer.body);
      assert.equal(answer.allow, 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS', 'as OPTIONS says');
    }
    assert.equal(received.length, before);
  });
});

describe("plain HTTP route: the backend's own URLs in Location", () => {
  const redirected = async (to: string, created = false) => {
    const response = await fetch(`${gateway.url}/api/redirect?to=${encodeURIComponent(to)}${created ? '&created' : ''}`, {
      headers: { authorization: `Bearer ${await bearer()}` },
      redirect: 'manual',
    });
    await response.arrayBuffer();
    return { status: response.status, location: response.headers.get('location'), contentLocation: response.headers.get('content-location') };
  };

  it('gives a URL under the backend base back under the route, however the backend wrote it', async () => {
    const api = `${gateway.url}/api`;
    for (const [to, expected] of [
      ['{origin}/base/users/7?fields=name#top', `${api}/users/7?fields=name#top`],
      ['/base/login', `${api}/login`],
      ['users/8', `${api}/users/8`],
      ['{origin}/base', api],
    ]) {
      assert.deepEqual(await redirected(to!), { status: 302, location: expected, contentLocation: null }, to);
    }
    assert.deepEqual(await redirected('{origin}/base/users/9', true), { status: 201, location: `${api}/users/9`, contentLocation: `${api}/users/9` });
  });

  it('leaves a URL elsewhere as the backend chose it (another site; its origin outside the base path)', async () => {
    for (const to of ['https://login.example/authorize?x=1', '{origin}/admin', '{origin}/basement', '../elsewhere']) {
      const expected = to.replace('{origin}', backendOrigin);
      assert.equal((await redirected(to)).location, expected, to);
    }
  });
});
