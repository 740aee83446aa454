import assert from 'node:assert/strict';
import { createServer, request, type ClientRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createTestKeyring, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * Plain HTTP routes stream request bodies to the backend; `server.bodyLimitBytes` caps them while streaming, so a
 * client cannot push more than the limit to a backend by leaving out (or lying about) `Content-Length`.
 */
const LIMIT = 1024;
const keyring = createTestKeyring();
let gateway: TestGateway;
let backend: Server;
/** Bytes each backend request delivered, whether it completed or was aborted. */
const received: number[] = [];
/** What each completed backend request's body said. */
const bodies: string[] = [];
let earlyAnswered = Promise.withResolvers<void>();

before(async () => {
  backend = createServer((req, res) => {
    if (req.url?.startsWith('/v1/early')) {
      // Drops the connection without reading the body: the upload fails mid-way. (A backend that answers early and
      // closes does the same to undici when the close wins the race with its answer, which then never arrives.)
      req.socket.destroy();
      earlyAnswered.resolve();
      return;
    }
    const index = received.push(0) - 1;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      received[index]! += chunk.length;
      chunks.push(chunk);
    });
    req.on('error', () => {});
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString());
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`got ${received[index]}`);
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({
    keyring,
    config: {
      server: { bodyLimitBytes: LIMIT },
      routes: [
        { path: '/api', type: 'http', backend: `${origin}/v1` },
        { path: '/slow', type: 'http', backend: `${origin}/v1`, timeouts: { requestBodyMs: 200 } },
        { path: '/small', type: 'http', backend: `${origin}/v1`, bodyLimitBytes: LIMIT / 2 },
      ],
    },
  });
});
after(async () => {
  await gateway?.close();
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/**
 * A POST whose body is written by `write` without ending the request first: the answer may come while the body is
 * still being sent (that is the point), so the request is destroyed once the answer has been read.
 */
function post(headers: Record<string, string | number>, write: (req: ClientRequest) => void, path = '/api/upload'): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const req = request(`${gateway.url}${path}`, { method: 'POST', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.once('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        req.destroy();
      });
      res.once('error', reject);
    });
    // Writing after the gateway closed the connection fails with EPIPE; the answer already says what happened.
    req.on('error', (error) => (req.writableEnded ? undefined : reject(error)));
    write(req);
  });
}

const bearer = () => mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/api` });

describe('plain HTTP route body limit', () => {
  it('streams a chunked body of exactly the limit to the backend', async () => {
    const before = received.length;
    const answer = await post({ authorization: `Bearer ${await bearer()}`, 'content-type': 'application/octet-stream' }, (req) => {
      req.write(Buffer.alloc(LIMIT / 2, 1));
      req.end(Buffer.alloc(LIMIT / 2, 2));
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.body, `got ${LIMIT}`);
    assert.equal(received.length, before + 1);
  });

  it('refuses a declared Content-Length over the limit before contacting the backend', async () => {
    const before = received.length;
    const answer = await post(
      { authorization: `Bearer ${await bearer()}`, 'content-type': 'application/octet-stream', 'content-length': LIMIT + 1 },
      (req) => req.flushHeaders(),
    );
    assert.equal(answer.status, 413);
    assert.equal(answer.headers.connection, 'close');
    assert.equal((JSON.parse(answer.body) as { error: string }).error, 'payload_too_large');
    assert.equal(received.length, before, 'the backend was never called');
  });

  it('aborts a chunked body that crosses the limit with 413, having forwarded no more than the limit', async () => {
    const before = received.length;
    const answer = await post({ authorization: `Bearer ${await bearer()}`, 'content-type': 'application/octet-stream' }, (req) => {
      // Four chunks of 400 bytes and no Content-Length: the third crosses 1024.
      for (let i = 0; i < 3; i++) req.write(Buffer.alloc(400, i));
      req.end(Buffer.alloc(400, 3));
    });
    assert.equal(answer.status, 413);
    assert.equal((JSON.parse(answer.body) as { error: string }).error, 'payload_too_large');
    const forwarded = received.slice(before);
    assert.ok(forwarded.every((bytes) => bytes <= LIMIT), `forwarded ${forwarded.join(', ')} bytes`);
    assert.equal(gateway.logs.text().includes('unexpected gateway error'), false);
  });

  describe('when the backend drops the connection while the body is still arriving', () => {
    /** Sends `first`, waits until the backend has dropped the upload (and a moment for the gateway to see it), then the rest. */
    const uploadAcrossDrop = async (first: number, rest: number[]) => {
      earlyAnswered = Promise.withResolvers<void>();
      return post({ authorization: `Bearer ${await bearer()}`, 'content-type': 'application/octet-stream' }, (req) => {
        req.write(Buffer.alloc(first, 1));
        void earlyAnswered.promise.then(async () => {
          await new Promise((resolve) => setTimeout(resolve, 200));
          for (const size of rest) if (!req.destroyed) req.write(Buffer.alloc(size, 2));
          if (!req.destroyed) req.end();
        });
      }, '/api/early');
    };

    it('answers 413 when the body turns out to be over the limit (a mistake of the client, not a backend failure)', async () => {
      const answer = await uploadAcrossDrop(400, [400, 400]);
      assert.equal(answer.status, 413);
      assert.equal((JSON.parse(answer.body) as { error: string }).error, 'payload_too_large');
      assert.equal(gateway.logs.text().includes('unexpected gateway error'), false);
    });

    it('answers 502 when the body was within the limit (the backend failed; its lost answer cannot be relayed)', async () => {
      const answer = await uploadAcrossDrop(400, [200]);
      assert.equal(answer.status, 502);
      assert.equal((JSON.parse(answer.body) as { error: string }).error, 'bad_gateway');
    });
  });

  it("holds a route with its own, smaller limit to it, declared or streamed (the backend's limit, set on the route)", async () => {
    const bearer = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/small` });
    const before = received.length;
    const declared = await post(
      { authorization: `Bearer ${bearer}`, 'content-type': 'application/octet-stream', 'content-length': LIMIT / 2 + 1 },
      (req) => req.flushHeaders(),
      '/small/upload',
    );
    assert.equal(declared.status, 413);
    assert.equal(received.length, before, 'a declared length over the route limit never reaches the backend');
    const streamed = await post({ authorization: `Bearer ${bearer}`, 'content-type': 'application/octet-stream' }, (req) => {
      req.write(Buffer.alloc(400, 1));
      req.end(Buffer.alloc(400, 2));
    }, '/small/upload');
    assert.equal(streamed.status, 413);
    const within = await post({ authorization: `Bearer ${bearer}`, 'content-type': 'application/octet-stream' }, (req) => req.end(Buffer.alloc(LIMIT / 2, 3)), '/small/upload');
    assert.equal(within.status, 200);
    assert.equal(within.body, `got ${LIMIT / 2}`);
  });

  it('still refuses an oversized body without a token as unauthorized, not by size', async () => {
    const answer = await post({ 'content-type': 'application/octet-stream', 'content-length': LIMIT + 1 }, (req) => req.flushHeaders());
    assert.equal(answer.status, 401);
  });

  it('answers 408 when a streamed body does not arrive within requestBodyMs (the same deadline as MCP POSTs)', async () => {
    const bearerSlow = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/slow` });
    const answer = await post(
      { authorization: `Bearer ${bearerSlow}`, 'content-type': 'application/octet-stream' },
      (req) => req.write(Buffer.alloc(10, 1)),
      '/slow/upload',
    );
    assert.equal(answer.status, 408);
  });

  describe('a form body', () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' };

    // RFC 6750 §2.2's form-encoded token: passed on, the body would hand the backend the client's own token.
    for (const [name, body] of [
      ['access_token', (token: string) => `note=hi&access_token=${token}`],
      ['the name percent-encoded', (token: string) => `acc%65ss_token=${token}&note=hi`],
      ['sent in two chunks', (token: string) => `access_tok|en=${token}`],
      ['after a `;` (frameworks that split on it)', (token: string) => `note=hi;access_token=${token}`],
      ['as PHP reads `access.token`', (token: string) => `access.token=${token}`],
      ['in capitals (ASP.NET reads names in any case)', (token: string) => `ACCESS_TOKEN=${token}`],
      ['as an array of one (qs, Rack, PHP)', (token: string) => `access_token[]=${token}`],
      ['with a stray `%` beside an escape (PHP decodes each escape on its own)', (token: string) => `access%5Ftoken[%]=${token}`],
      ['with an unclosed bracket (Rack 3 reads a map of access_token)', (token: string) => `access_token[x=${token}`],
      ['in brackets (Rack 2 strips them)', (token: string) => `[access_token][]=${token}`],
      ['with `]` after it (Rack 2 reads up to the first bracket)', (token: string) => `access_token]]=${token}`],
      ['with %uXXXX (classic ASP.NET decodes it)', (token: string) => `access%u005Ftoken=${token}`],
    ] as const) {
      it(`naming access_token (${name}) is refused (400) and never reaches the backend`, async () => {
        const token = await bearer();
        const before = received.length;
        const [head, tail = ''] = body(token).split('|');
        const answer = await post({ authorization: `Bearer ${token}`, ...form }, (req) => {
          req.write(head!);
          setTimeout(() => req.end(tail), 20);
        });
        assert.equal(answer.status, 400);
        assert.equal((JSON.parse(answer.body) as { error: string }).error, 'invalid_request');
        assert.equal(answer.body.includes(token), false, 'the refusal does not echo the token');
        assert.equal(received.length, before, 'the backend was never called');
        assert.equal(gateway.logs.text().includes(token), false);
      });
    }

    it('compressed is refused (415): it cannot be read for a token, and backends inflate it', async () => {
      const before = received.length;
      const answer = await post({ authorization: `Bearer ${await bearer()}`, ...form, 'content-encoding': 'gzip' }, (req) => req.end('x'));
      assert.equal(answer.status, 415);
      assert.equal(received.length, before, 'the backend was never called');
    });

    it('without a token field is forwarded whole, with its length, and one over the limit is still refused', async () => {
      const before = bodies.length;
      const text = 'note=access+granted&token_hint=x&%zz=1';
      const answer = await post({ authorization: `Bearer ${await bearer()}`, ...form }, (req) => {
        req.write(text.slice(0, 10));
        req.end(text.slice(10));
      });
      assert.equal(answer.status, 200);
      assert.equal(answer.body, `got ${text.length}`);
      assert.deepEqual(bodies.slice(before), [text]);
      const over = await post({ authorization: `Bearer ${await bearer()}`, ...form }, (req) => {
        req.write(`a=${'x'.repeat(LIMIT)}`);
        req.end();
      });
      assert.equal(over.status, 413);
      const slow = await post(
        { authorization: `Bearer ${await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/slow` })}`, ...form },
        (req) => req.write('a=1'),
        '/slow/upload',
      );
      assert.equal(slow.status, 408);
    });
  });
});
