import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { buildServer } from '../../src/server/app.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { defaultHtmlCsp } from '../../src/server/security-headers.ts';
import { createServerTestContext } from '../support/server-context.ts';

/** A part of Gatehouse as the other areas will write one: a plugin whose handlers throw ProtocolError. */
const samplePart: FastifyPluginAsync = async (app) => {
  app.post('/echo', async (request) => ({ received: request.body }));
  app.post(
    '/validated',
    { schema: { body: { type: 'object', required: ['grant_type'], properties: { grant_type: { type: 'string' } } } } },
    async () => ({ ok: true }),
  );
  app.get('/page', async (_request, reply) => reply.type('text/html; charset=utf-8').send('<p>hello</p>'));
  // As a relayed backend answer may spell its type: a browser renders it as HTML all the same.
  app.get('/page-spelt-otherwise', async (_request, reply) => reply.header('content-type', 'Text/HTML').send('<p>hello</p>'));
  app.get('/svg', async (_request, reply) => reply.header('content-type', 'image/svg+xml').send('<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>'));
  app.get('/problem', async (_request, reply) => reply.header('content-type', 'application/problem+json').send('{"title":"x"}'));
  app.get('/own-csp', async (_request, reply) =>
    reply.type('text/html').header('content-security-policy', "default-src 'self'").send('<p>own</p>'),
  );
  app.get('/protected', async () => {
    throw new ProtocolError('invalid_token', undefined, { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
  });
  app.get('/jsonrpc-route', { config: { errorFormat: 'jsonrpc' } }, async () => {
    throw new ProtocolError('forbidden_origin');
  });
  app.get('/html-route', { config: { errorFormat: 'html' } }, async () => {
    throw new ProtocolError('access_denied', 'Denied <script>alert(1)</script>');
  });
  app.get('/bug', async () => {
    throw new Error('internal detail: connection string postgres://admin:hunter2@db');
  });
  app.post('/zod', async (request) => {
    const body = z.object({ grant_type: z.enum(['authorization_code']) }).strict().parse(request.body);
    return body;
  });
};

function assertNoStackOrInternals(body: string): void {
  assert.doesNotMatch(body, /\bat [^\s]+ \(/, 'no stack frame');
  assert.doesNotMatch(body, /node_modules|\.ts:\d+/, 'no file paths');
}

describe('buildServer', () => {
  const { ctx, logs } = createServerTestContext({ server: { bodyLimitBytes: 1024 } });
  let app: FastifyInstance;
  before(async () => {
    app = await buildServer(ctx, { plugins: [samplePart] });
  });
  after(() => app.close());

  it('mounts parts passed as plugins', async () => {
    const res = await app.inject({ method: 'POST', url: '/echo', payload: { a: 1 } });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { received: { a: 1 } });
  });

  it('sets security headers on every response, and no-store on JSON', async () => {
    for (const url of ['/healthz', '/nowhere', '/page']) {
      const res = await app.inject({ url });
      assert.equal(res.headers['x-content-type-options'], 'nosniff', url);
      assert.equal(res.headers['referrer-policy'], 'no-referrer', url);
      assert.equal(res.headers['x-frame-options'], 'DENY', url);
      assert.equal(res.headers['strict-transport-security'], undefined, `${url}: no HSTS on an http public URL`);
    }
    assert.equal((await app.inject({ url: '/healthz' })).headers['cache-control'], 'no-store');
  });

  it('gives HTML a strict CSP unless the route set its own', async () => {
    assert.equal((await app.inject({ url: '/page' })).headers['content-security-policy'], defaultHtmlCsp);
    assert.equal((await app.inject({ url: '/page-spelt-otherwise' })).headers['content-security-policy'], defaultHtmlCsp);
    assert.equal((await app.inject({ url: '/svg' })).headers['content-security-policy'], defaultHtmlCsp, 'an SVG document runs script too');
    assert.equal((await app.inject({ url: '/problem' })).headers['cache-control'], 'no-store');
    assert.match(defaultHtmlCsp, /frame-ancestors 'none'/);
    assert.equal((await app.inject({ url: '/own-csp' })).headers['content-security-policy'], "default-src 'self'");
    assert.equal((await app.inject({ url: '/healthz' })).headers['content-security-policy'], undefined);
  });

  it('sends HSTS when the public URL is https', async () => {
    const https = createServerTestContext({ publicUrl: 'https://gatehouse.example.com' });
    const secureApp = await buildServer(https.ctx);
    try {
      const res = await secureApp.inject({ url: '/healthz' });
      assert.match(String(res.headers['strict-transport-security']), /^max-age=\d+/);
    } finally {
      await secureApp.close();
    }
  });

  it('turns new requests away with a JSON 503 once draining', async () => {
    const draining = createServerTestContext();
    const drainingApp = await buildServer(draining.ctx);
    try {
      drainingApp.lifecycle.beginDraining();
      const res = await drainingApp.inject({ url: '/healthz' });
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().error, 'temporarily_unavailable');
      assert.equal(res.headers.connection, 'close');
      assert.ok(res.headers['retry-after']);
    } finally {
      await drainingApp.close();
    }
  });

  describe('request ids', () => {
    const behindProxy = createServerTestContext({ server: { trustProxy: true } });
    let proxied: FastifyInstance;
    before(async () => {
      proxied = await buildServer(behindProxy.ctx);
    });
    after(() => proxied.close());

    it("echoes a sane X-Request-Id from a declared proxy (server.trustProxy), and never a client's own", async () => {
      const fromProxy = await proxied.inject({ url: '/healthz', headers: { 'x-request-id': 'lb-4f2a.9:1' } });
      assert.equal(fromProxy.headers['x-request-id'], 'lb-4f2a.9:1');
      // No proxy declared: the header is what the client wrote, and could be another request's id.
      const fromClient = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'lb-4f2a.9:1' } });
      assert.notEqual(fromClient.headers['x-request-id'], 'lb-4f2a.9:1');
      assert.match(String(fromClient.headers['x-request-id']), /^[A-Za-z0-9_-]{8,}$/);
    });

    for (const [name, offered] of [
      ['too long', 'a'.repeat(200)],
      ['spaces and quotes', 'x" injected=1'],
      ['empty', ''],
    ] as const) {
      it(`replaces an X-Request-Id that is ${name}, even from a proxy`, async () => {
        const res = await proxied.inject({ url: '/healthz', headers: { 'x-request-id': offered } });
        const id = String(res.headers['x-request-id']);
        assert.notEqual(id, offered);
        assert.match(id, /^[A-Za-z0-9_-]{8,}$/);
      });
    }

    it('generates distinct ids when none is offered', async () => {
      const a = (await app.inject({ url: '/healthz' })).headers['x-request-id'];
      const b = (await app.inject({ url: '/healthz' })).headers['x-request-id'];
      assert.ok(a && b);
      assert.notEqual(a, b);
    });
  });

  describe('errors are JSON with the right status, never a 500 for bad input', () => {
    const cases = [
      { name: 'unknown route', request: { url: '/no/such/thing' }, status: 404, error: 'not_found' },
      {
        name: 'body over the limit',
        request: { method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ pad: 'x'.repeat(4096) }) },
        status: 413,
        error: 'payload_too_large',
      },
      {
        name: 'unsupported content type',
        request: { method: 'POST', url: '/echo', headers: { 'content-type': 'application/x-unknown' }, payload: 'abc' },
        status: 415,
        error: 'invalid_request',
      },
      {
        name: 'malformed JSON',
        request: { method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '{"a": tru' },
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'empty JSON body',
        request: { method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '' },
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'schema validation failure',
        request: { method: 'POST', url: '/validated', payload: { other: true } },
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'zod validation failure in a handler',
        request: { method: 'POST', url: '/zod', payload: { grant_type: 'password', extra: 'sekrit-value' } },
        status: 400,
        error: 'invalid_request',
      },
    ] as const;

    for (const { name, request, status, error } of cases) {
      it(name, async () => {
        const res = await app.inject(request);
        assert.equal(res.statusCode, status);
        assert.match(String(res.headers['content-type']), /^application\/json/);
        const body = res.json() as { error: string; error_description: string };
        assert.equal(body.error, error);
        assert.equal(typeof body.error_description, 'string');
        assertNoStackOrInternals(res.body);
      });
    }

    it('does not echo a malformed JSON body (it may hold a token)', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/echo',
        headers: { 'content-type': 'application/json' },
        payload: '{"refresh_token": "rt-SECRET-123", oops}',
      });
      assert.equal(res.statusCode, 400);
      assert.doesNotMatch(res.body, /rt-SECRET-123/);
    });

    it('renders a ProtocolError with its status and WWW-Authenticate', async () => {
      const res = await app.inject({ url: '/protected' });
      assert.equal(res.statusCode, 401);
      assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"');
      assert.equal(res.json().error, 'invalid_token');
    });

    it('renders JSON-RPC errors on routes that ask for them', async () => {
      const res = await app.inject({ url: '/jsonrpc-route' });
      assert.equal(res.statusCode, 403);
      const body = res.json();
      assert.equal(body.jsonrpc, '2.0');
      assert.equal(body.id, null);
      assert.equal(typeof body.error.code, 'number');
      assert.match(body.error.message, /Origin/);
    });

    it('renders escaped HTML on routes that ask for it', async () => {
      const res = await app.inject({ url: '/html-route' });
      assert.equal(res.statusCode, 403);
      assert.match(String(res.headers['content-type']), /^text\/html/);
      assert.doesNotMatch(res.body, /<script>/);
      assert.match(res.body, /&lt;script&gt;/);
      assert.match(res.body, /request id <code class="error-code">[^<]+<\/code>/, 'the styled page names the request id');
    });

    it('turns an unexpected error into a generic 500 and logs it with the request id', async () => {
      const res = await app.inject({ url: '/bug' });
      assert.equal(res.statusCode, 500);
      assert.equal(res.json().error, 'server_error');
      assert.doesNotMatch(res.body, /hunter2|internal detail/);
      assertNoStackOrInternals(res.body);
      const logged = logs.lines().find((line) => line.reqId === res.headers['x-request-id'] && line.msg === 'unexpected error');
      assert.ok(logged, 'the error is logged server-side with the request id');
      assert.match(JSON.stringify(logged.err), /internal detail/);
    });
  });
});
