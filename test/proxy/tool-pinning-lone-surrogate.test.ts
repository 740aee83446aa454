import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { listToolPins } from '../../src/admin/tools.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createTestKeyring, listedTools, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * A tool named with a lone surrogate (JSON allows `"\ud800"`; UTF-8 cannot write it). RFC 8785 has no spelling for
 * one and the canonicalizer threw on it, so one such tool failed the review of the whole answer: under `block` every
 * tool was hidden and refused, nothing was pinned, the failure was logged as a store outage, and the failed answer
 * used up the route's first listing, so every tool was "new" once the backend dropped the surrogate. It is listed,
 * pinned and reviewed like any other tool now (docs/operations.md); a call naming it is refused (-32602) as any call
 * whose tool name is not whole characters is (mcp-message.ts: to a backend that drops the half character, that call
 * is one of another tool than the one judged).
 */
const SURROGATE = 'sur\ud800name';
/** The backend's answer as it writes it: the JSON escape `\ud800`, which JSON.parse turns into a lone surrogate. */
const withSurrogate = '{"name":"sur\\ud800name","description":"odd \\udc00 text","inputSchema":{"type":"object"}}';
const plain = '{"name":"plain","description":"Plain","inputSchema":{"type":"object"}}';

describe('a tool named with a lone surrogate', () => {
  const keyring = createTestKeyring();
  let backend: Server;
  let gateway: TestGateway;
  let sendSurrogate = true;

  before(async () => {
    backend = createServer((request: IncomingMessage, response: ServerResponse) => {
      let text = '';
      request.on('data', (chunk: Buffer) => (text += chunk));
      request.on('end', () => {
        const message = JSON.parse(text) as { id?: unknown; method: string };
        const result =
          message.method === 'tools/list' ? `{"tools":[${sendSurrogate ? `${withSurrogate},` : ''}${plain}]}` : '{"content":[{"type":"text","text":"called"}]}';
        response.writeHead(200, { 'content-type': 'application/json' }).end(`{"jsonrpc":"2.0","id":${JSON.stringify(message.id)},"result":${result}}`);
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/mcp`;
    gateway = await startTestGateway({
      keyring,
      config: {
        routes: [
          { path: '/block', backend: backendUrl, toolPinning: 'block' },
          { path: '/warn', backend: backendUrl, toolPinning: 'warn' },
          { path: '/corrupt', backend: backendUrl, toolPinning: 'block' },
        ],
      },
    });
  });
  after(async () => {
    await gateway.close();
    backend.closeAllConnections();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  });

  const tokenFor = (path: string) => mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}${path}` });
  const listed = async (path: string) => (await listedTools(`${gateway.url}${path}`, await tokenFor(path))).map((tool) => tool.name).sort();
  const call = async (path: string, tool: string) => (await mcpPost(`${gateway.url}${path}`, await tokenFor(path), toolsCall(tool, {}, 7))).text();
  const pinned = async (route: string) =>
    (await listToolPins({ store: gateway.store, clock: systemClock, config: gateway.ctx.config }, { route })).map((pin) => `${pin.name}:${pin.status}`).sort();

  for (const route of ['/block', '/warn']) {
    it(`is pinned on first use like any other, and leaves the other tools alone (${route})`, async () => {
      sendSurrogate = true;
      assert.deepEqual(await listed(route), ['plain', SURROGATE]);
      assert.match(await call(route, 'plain'), /called/);
      assert.match(await call(route, SURROGATE), /"code":-32602.*whole Unicode characters/);
      assert.deepEqual(await pinned(route), ['plain:approved', `${SURROGATE}:approved`]);
      assert.doesNotMatch(gateway.logs.text(), /tool pins could not be checked/);

      // Listed again, it is the same definition: nothing pending, nothing hidden.
      assert.deepEqual(await listed(route), ['plain', SURROGATE]);
      assert.deepEqual(await pinned(route), ['plain:approved', `${SURROGATE}:approved`]);
    });
  }

  it('does not make the route\'s tools "new" once the backend stops listing it', async () => {
    sendSurrogate = false;
    assert.deepEqual(await listed('/block'), ['plain']);
    assert.match(await call('/block', 'plain'), /called/);
    assert.deepEqual(await pinned('/block'), ['plain:approved', `${SURROGATE}:approved`]);
  });

  it('logs a review that fails for another reason than the store as what it is, not as an outage', async () => {
    // A stored pin that does not validate (a hand edit): the review fails, `block` fails closed.
    await gateway.store.set('tool-pin', '/corrupt|plain', { route: '/corrupt', name: 42 }, { indexes: { route: '/corrupt' } });
    assert.deepEqual(await listed('/corrupt'), []);
    assert.match(gateway.logs.text(), /tool pin review failed/);
    assert.doesNotMatch(gateway.logs.text(), /tool pins could not be checked/);
  });
});
