import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { ACCESS_TOKEN_CLOCK_SKEW_SECONDS } from '../../src/proxy/verify-access-token.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createTestKeyring, followStream, mcpPost, mintAccessToken, startTestGateway, type MintOptions, type TestGateway } from './harness.ts';

/**
 * A stream a client listens on ends with the access token that opened it. A probe minted a 15 s token, opened a GET
 * stream and was relayed events for 35 s, until it gave up: a stolen token was bounded by its lifetime, the stream it
 * opened only by the idle timeout, or not at all behind a backend that sends keep-alives (this one does). A session
 * whose owner goes on with fresh tokens of the same grant keeps its streams: each of its authorized requests moves
 * their end on. A legacy `/sse` stream (the session itself) ends a grace after its token; a POST's answer (bounded by
 * its request: a tool's result lost after it ran) is not cut at its token's end.
 */
const keyring = createTestKeyring();
const clock = new ManualClock(Date.now());
let gateway: TestGateway;
let backend: Server;
/** The backend's legacy streams by its own session id, to answer messages on. */
const legacyStreams = new Map<string, ServerResponse>();
let nextSession = 0;
const keepAlives = new Set<ReturnType<typeof setInterval>>();

function openBackendStream(response: ServerResponse, first: string): void {
  response.writeHead(200, { 'content-type': 'text/event-stream' });
  response.write(first);
  const keepAlive = setInterval(() => response.write(': keep-alive\n\n'), 200);
  keepAlives.add(keepAlive);
  response.once('close', () => {
    clearInterval(keepAlive);
    keepAlives.delete(keepAlive);
  });
}

function backendHandler(request: IncomingMessage, response: ServerResponse): void {
  const url = new URL(request.url ?? '/', 'http://backend');
  if (url.pathname === '/sse') {
    const session = `b${++nextSession}`;
    legacyStreams.set(session, response);
    return openBackendStream(response, `event: endpoint\ndata: /messages?session=${session}\n\n`);
  }
  if (request.method === 'GET') return openBackendStream(response, ': open\n\n');
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.once('end', () => {
    const message = JSON.parse(Buffer.concat(chunks).toString()) as { id: number };
    const answer = JSON.stringify({ jsonrpc: '2.0', id: message.id, result: {} });
    if (url.pathname === '/messages') {
      legacyStreams.get(url.searchParams.get('session') ?? '')?.write(`event: message\ndata: ${answer}\n\n`);
      return void response.writeHead(202).end();
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (request.headers['mcp-session-id'] === undefined) headers['mcp-session-id'] = `s${++nextSession}`;
    // A long tool call: its answer comes over SSE, after a while (keep-alives until then).
    // A long tool call, and a 2026-07-28 listening stream: answered over SSE, kept open (keep-alives meanwhile).
    const method = (message as { method?: string }).method;
    if (method === 'tools/call' || method === 'subscriptions/listen') return openBackendStream(response, ': working\n\n');
    response.writeHead(200, headers).end(answer);
  });
}

before(async () => {
  backend = createServer(backendHandler);
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({
    keyring,
    clock,
    config: { routes: [{ path: '/mcp', backend: `${origin}/mcp` }, { path: '/legacy', backend: `${origin}/sse`, transports: ['sse'] }] },
  });
});

after(async () => {
  await gateway?.close();
  for (const keepAlive of keepAlives) clearInterval(keepAlive);
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

/** A token living `seconds` on the gateway's clock (which the tests move on past real time). */
function tokenFor(route: string, seconds: number, options: Omit<MintOptions, 'aud' | 'expiresIn'> = {}): Promise<string> {
  const ahead = Math.round((clock.now() - Date.now()) / 1000);
  return mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}${route}`, expiresIn: ahead + seconds, ...options });
}

/** Moves the gateway's clock to the moment its bearer check starts refusing `token`. */
function passEndOf(token: string): void {
  clock.set((decodeJwt(token).exp! + ACCESS_TOKEN_CLOCK_SKEW_SECONDS) * 1000);
}

const getStream = (token: string, headers: Record<string, string> = {}) =>
  fetch(`${gateway.url}/mcp`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers } });

/** A legacy session: its stream's reader and the messages URL of its `endpoint` event. */
async function openLegacySession(token: string) {
  const response = await fetch(`${gateway.url}/legacy/sse`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  let text = '';
  while (!/data: (\S+)\n\n/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
  const messagesUrl = /data: (\S+)\n\n/.exec(text)![1]!;
  let ended = false;
  let received = '';
  const end = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += new TextDecoder().decode(value);
      }
    } catch {
      // cut
    }
    ended = true;
  })();
  const post = (postToken: string, id: number) =>
    fetch(messagesUrl, { method: 'POST', headers: { authorization: `Bearer ${postToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' }) });
  return { post, end, ended: () => ended, received: () => received };
}

/** The audit record of a stream of `route` cut at its token's end, once after `from` (records are written in batches). */
async function expiryCut(route: string, from: number): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined;
  await until(() => {
    found = gateway.auditLines.slice(from).map((line) => JSON.parse(line) as Record<string, unknown>).find((record) => record['reason'] === 'token expired' && record['route'] === route);
    return found !== undefined;
  });
  return found!;
}

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('waited 5 s in vain');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('a Streamable HTTP stream', () => {
  it('is cut when the token that opened it expires (audited server_closed, "token expired"); a fresh token opens it again', { timeout: 10_000 }, async () => {
    const from = gateway.auditLines.length;
    const token = await tokenFor('/mcp', 60);
    const outliving = await followStream(await getStream(await tokenFor('/mcp', 600)));
    const response = await getStream(token);
    assert.equal(response.status, 200);
    const stream = await followStream(response);

    passEndOf(token);
    await stream.end;
    assert.equal((await expiryCut('/mcp', from)).outcome, 'server_closed');
    assert.equal(outliving.ended(), false, 'a stream whose token lives on is not cut');

    const again = await getStream(await tokenFor('/mcp', 60));
    assert.equal(again.status, 200);
    await again.body?.cancel();
  });

  it("lives on in its session while the same grant's later requests carry fresh tokens", { timeout: 10_000 }, async () => {
    const grant = { gid: 'grant-streamable' };
    const first = await tokenFor('/mcp', 60, grant);
    const opened = await mcpPost(`${gateway.url}/mcp`, first, { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} });
    const session = opened.headers.get('mcp-session-id');
    await opened.text();
    assert.ok(session);
    const inSession = await followStream(await getStream(first, { 'mcp-session-id': session }));
    const outOfSession = await followStream(await getStream(first));

    const refreshed = await mcpPost(`${gateway.url}/mcp`, await tokenFor('/mcp', 600, grant), { jsonrpc: '2.0', id: 2, method: 'ping' }, { 'mcp-session-id': session });
    assert.equal(refreshed.status, 200);
    await refreshed.text();

    passEndOf(first);
    await outOfSession.end;
    assert.equal(inSession.ended(), false, "the session's stream lives on to the fresh token's end");
  });
});

describe('a 2026-07-28 listening stream', () => {
  it('(a subscriptions/listen POST) is cut when its token expires, as a GET stream is', { timeout: 10_000 }, async () => {
    const from = gateway.auditLines.length;
    const token = await tokenFor('/mcp', 60);
    const listen = await mcpPost(`${gateway.url}/mcp`, token, { jsonrpc: '2.0', id: 9, method: 'subscriptions/listen', params: { notifications: {} } });
    assert.equal(listen.status, 200);
    const stream = await followStream(listen);
    passEndOf(token);
    await stream.end;
    assert.equal((await expiryCut('/mcp', from)).outcome, 'server_closed');
  });
});

describe('streams that end otherwise', () => {
  it("a POST's answer over SSE: bounded by its request, a tool's result is not lost because the token expired meanwhile", { timeout: 10_000 }, async () => {
    const token = await tokenFor('/mcp', 60);
    const call = await mcpPost(`${gateway.url}/mcp`, token, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow', arguments: {} } });
    assert.equal(call.status, 200);
    const answer = await followStream(call);
    passEndOf(token);
    // Two sweeps of the replica's expiry timer (one a second) pass without cutting it.
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    assert.equal(answer.ended(), false);
    await call.body?.cancel().catch(() => undefined);
  });

  it('a legacy /sse stream is the session: cut a grace after its token (the idle timeout), unless the same grant posts with a fresh token', { timeout: 10_000 }, async () => {
    const grant = { gid: 'grant-legacy', sub: 'tenant/alice', clientId: 'client-1' };
    const first = await tokenFor('/legacy', 60, grant);
    const kept = await openLegacySession(first);
    const idle = await openLegacySession(first);
    passEndOf(first);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    assert.equal(kept.ended(), false, 'an MCP client refreshes only after a 401: cut at once, it lost its session every token lifetime');
    assert.equal((await kept.post(first, 1)).status, 401, 'the expired token posts nothing');
    const fresh = await tokenFor('/legacy', 600, grant);
    assert.equal((await kept.post(fresh, 2)).status, 202);
    await until(() => kept.received().includes('"id":2'));
    // Past the grace (the route's idle timeout, 15 min by default): the session no fresh token reached is cut.
    const from = gateway.auditLines.length;
    clock.advance(15 * 60_000);
    await idle.end;
    assert.equal((await expiryCut('/legacy', from)).outcome, 'server_closed');
    assert.equal(kept.ended(), false, 'the session its owner posted to with a fresh token lives on');
    passEndOf(fresh);
    clock.advance(15 * 60_000);
    await kept.end;
  });
});
