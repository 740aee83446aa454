import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createTestKeyring, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * A plain HTTP route relays a body as the backend sent it, so it keeps the backend's `Content-Length`: a HEAD says
 * how large the resource is (RFC 9110 §9.3.2), and a large download arrives with its size, not chunked.
 */
const keyring = createTestKeyring();
const big = Buffer.alloc(200_000, 0x61);
let gateway: TestGateway;
let backend: Server;

before(async () => {
  backend = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(big.length) });
    res.end(req.method === 'HEAD' ? undefined : big);
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({ keyring, config: { routes: [{ path: '/files', type: 'http', backend: `${origin}/v1` }] } });
});
after(async () => {
  await gateway?.close();
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

async function call(method: string): Promise<{ headers: IncomingMessage['headers']; length: number; status: number }> {
  const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/files` });
  return new Promise((resolve, reject) => {
    const sent = request(`${gateway.url}/files/big.bin`, { method, headers: { authorization: `Bearer ${token}` } }, (response) => {
      let length = 0;
      response.on('data', (chunk: Buffer) => (length += chunk.length));
      response.on('end', () => resolve({ headers: response.headers, length, status: response.statusCode ?? 0 }));
    });
    sent.on('error', reject);
    sent.end();
  });
}

describe('a plain HTTP route relays the length of what it relays', () => {
  it('a large body: its Content-Length, not chunked, and all of it', async () => {
    const answer = await call('GET');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-length'], String(big.length));
    assert.equal(answer.headers['transfer-encoding'], undefined);
    assert.equal(answer.length, big.length);
  });

  it("HEAD: the resource's length, not the 0 of an empty answer", async () => {
    const answer = await call('HEAD');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-length'], String(big.length));
    assert.equal(answer.length, 0);
  });
});
