import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/server/app.ts';
import { parseRawResponse, rawExchange } from '../support/raw-http.ts';
import { createServerTestContext } from '../support/server-context.ts';

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

  it("a browser shown the page for a URL that cannot be routed gets every page's security headers (it is answered before the hooks)", async () => {
    for (const method of ['GET', 'POST']) {
      const url = '/account/grants/%E0%A4%A/revoke';
      const res = await app.inject({ method, url, headers: { accept: 'text/html' } });
      assert.equal(res.statusCode, 400, url);
      assert.match(String(res.headers['content-type']), /^text\/html/);
      assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/, method);
      assert.equal(res.headers['x-frame-options'], 'DENY');
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.equal(res.headers['referrer-policy'], 'no-referrer');
      assert.equal(res.headers['cache-control'], 'no-store');
    }
    const json = await app.inject({ url: '/authorize/%E0%A4%A' });
    assert.equal(json.headers['x-content-type-options'], 'nosniff');
    assert.equal(json.headers['content-security-policy'], undefined, 'JSON gets no page CSP, as everywhere else');
  });

  it('a malformed request line is 400 invalid_request', async () => {
    const { status, headers, body } = parseRawResponse(await rawExchange(port, 'GARBAGE\r\n\r\n'));
    assert.equal(status, 400);
    assert.match(headers, /content-type: application\/json/);
    assert.equal(JSON.parse(body).error, 'invalid_request');
  });

  it('CONNECT (a tunnel, through a forward proxy Gatehouse is not) is 501 in JSON (served for no resource), not a connection closed without a word', async () => {
    for (const target of ['127.0.0.1:443', '/mcp']) {
      const { status, headers, body } = parseRawResponse(await rawExchange(port, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
      assert.equal(status, 501, target);
      assert.match(headers, /content-type: application\/json/);
      assert.equal(JSON.parse(body).error, 'invalid_request');
    }
  });

  it('a CONNECT whose client resets the connection, or trickles bytes after it, takes nothing down and holds nothing', async () => {
    // Node takes its own error listener off a socket handed to `connect`: a reset was an unhandled error.
    const reset = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => reset.once('connect', () => resolve()));
    reset.write('CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((resolve) => reset.once('data', () => resolve()));
    reset.resetAndDestroy();
    const trickle = connect(port, '127.0.0.1');
    trickle.on('error', () => {});
    trickle.write('CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n');
    const drip = setInterval(() => trickle.write('x'), 100);
    const closed = new Promise<void>((resolve) => trickle.once('close', () => resolve()));
    try {
      await closed;
    } finally {
      clearInterval(drip);
    }
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'the server lives on');
  });

  it('the asterisk request target is 400 invalid_request on anything but OPTIONS (RFC 9110 §7.1)', async () => {
    for (const method of ['GET', 'POST', 'DELETE']) {
      const { status, body } = parseRawResponse(await rawExchange(port, `${method} * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`));
      assert.equal(status, 400, method);
      assert.equal(JSON.parse(body).error, 'invalid_request');
    }
  });

  it('a transfer coding other than chunked is 501, not a body passed on still coded (RFC 9112 §6.1)', async () => {
    for (const coding of ['gzip, chunked', 'deflate,chunked', 'identity, chunked']) {
      const request = `POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${coding}\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n5\r\na=b&c\r\n0\r\n\r\n`;
      const { status, body } = parseRawResponse(await rawExchange(port, request));
      assert.equal(status, 501, coding);
      assert.equal(JSON.parse(body).error, 'invalid_request');
    }
    const chunked = `POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n5\r\na=b&c\r\n0\r\n\r\n`;
    assert.notEqual(parseRawResponse(await rawExchange(port, chunked)).status, 501);
  });

  it('an answer sent before its body arrived ends the connection: no draining of a body nobody reads', async () => {
    // Unauthenticated and unrouted, declaring 10 GB: answered at once, and the connection closed after the answer
    // (kept open, Node read and discarded the body for as long as the client sent it).
    const outcome = await new Promise<{ head: string; closed: boolean }>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let received = '';
      const giveUp = setTimeout(() => {
        socket.destroy();
        resolve({ head: received, closed: false });
      }, 5_000);
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        received += chunk;
        // Keep sending body while the server lets us.
        if (!socket.destroyed) socket.write('x'.repeat(16_384));
      });
      socket.on('close', () => {
        clearTimeout(giveUp);
        resolve({ head: received, closed: true });
      });
      socket.on('error', () => undefined);
      socket.write(`POST /no-such-path HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000000\r\n\r\n${'x'.repeat(1024)}`);
    });
    assert.match(outcome.head, /^HTTP\/1\.1 404 /);
    assert.match(outcome.head.toLowerCase(), /\r\nconnection: close\r\n/);
    assert.equal(outcome.closed, true, 'the server closed the connection instead of reading the rest');
  });

  it('a request target with a fragment is 400 invalid_request (RFC 9112 §3.2)', async () => {
    for (const target of ['/healthz#x', '/api/echo/x#/../../y', '/#']) {
      const { status, body } = parseRawResponse(await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
      assert.equal(status, 400, target);
      assert.equal(JSON.parse(body).error, 'invalid_request');
    }
  });

  it('oversized headers are 431 invalid_request', async () => {
    const huge = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`;
    const { status, body } = parseRawResponse(await rawExchange(port, huge));
    assert.equal(status, 431);
    assert.equal(JSON.parse(body).error, 'invalid_request');
  });
});
