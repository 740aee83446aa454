import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/server/app.ts';
import { createServerTestContext } from '../support/server-context.ts';

/** Sends raw bytes and returns everything the server wrote before closing the connection. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.on('close', () => resolve(received));
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve(received) : reject(error)));
    socket.end(bytes);
  });
}

function parseRawResponse(raw: string): { status: number; headers: string; body: string } {
  const [head = '', body = ''] = raw.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head.toLowerCase(), body };
}

describe('malformed HTTP gets our JSON errors, never Fastify or Node defaults', () => {
  const { ctx } = createServerTestContext();
  let app: FastifyInstance;
  let port: number;
  before(async () => {
    app = await buildServer(ctx);
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
  });
  after(() => app.close());

  it('a URL with broken percent-encoding is 400 invalid_request without echoing the URL', async () => {
    const res = await app.inject({ url: '/authorize/%E0%A4%A?code=leaky' });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error, 'invalid_request');
    assert.doesNotMatch(res.body, /leaky|%E0/);
    assert.ok(res.headers['x-request-id']);
  });

  it('a malformed request line is 400 invalid_request', async () => {
    const { status, headers, body } = parseRawResponse(await rawExchange(port, 'GARBAGE\r\n\r\n'));
    assert.equal(status, 400);
    assert.match(headers, /content-type: application\/json/);
    assert.equal(JSON.parse(body).error, 'invalid_request');
  });

  it('oversized headers are 431 invalid_request', async () => {
    const huge = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`;
    const { status, body } = parseRawResponse(await rawExchange(port, huge));
    assert.equal(status, 431);
    assert.equal(JSON.parse(body).error, 'invalid_request');
  });
});
