import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * A session ended on one replica ends on every replica. Two gateways share a real Redis in front of a backend that,
 * like some hand-written servers, keeps a session's GET streams open after answering its `DELETE`. Before, the other
 * replica kept relaying those streams and kept its cached binding of the ended session, so it went on forwarding
 * requests naming it; a legacy session's binding outlived its stream on the replicas that had cached it the same way.
 */
const keyring = createTestKeyring();
const publicUrl = 'http://gateway.test';
let redis: RedisServer;
const stores: Store[] = [];
let replicaA: TestGateway;
let replicaB: TestGateway;
let backend: Server;
let backendUrl: string;
/** Requests the backend received, as `METHOD path session`. */
const seen: string[] = [];
let nextSession = 0;
/** Sessions whose GET the backend answers only after 1.5 s (time for the DELETE and its news to reach both replicas). */
const slowGets = new Set<string>();

function backendHandler(request: IncomingMessage, response: ServerResponse): void {
  const path = new URL(request.url ?? '/', 'http://backend').pathname;
  const session = request.headers['mcp-session-id'];
  seen.push(`${request.method} ${path} ${typeof session === 'string' ? session : '-'}`);
  if (path === '/sse') {
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.write('event: endpoint\ndata: /messages?session=b1\n\n');
    return;
  }
  if (request.method === 'GET') {
    // Held open whatever happens to the session: only the gateway can end it. A session in `slowGets` has its GET
    // answered late, after a DELETE the test sends meanwhile.
    const answer = () => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(': open\n\n');
    };
    if (typeof session === 'string' && slowGets.has(session)) setTimeout(answer, 1_500);
    else answer();
    return;
  }
  request.resume();
  request.once('end', () => {
    if (request.method === 'DELETE') return void response.writeHead(200).end();
    if (path === '/messages') return void response.writeHead(202).end();
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    // `/fixed` issues one id to every session, as a backend with a fixed or restarted id does.
    if (session === undefined) headers['mcp-session-id'] = path === '/fixed' ? 'fixed-session' : `session-${++nextSession}`;
    response.writeHead(200, headers).end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} }));
  });
}

before(async () => {
  redis = await startRedisServer();
  backend = createServer(backendHandler);
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const config = {
    routes: [
      { path: '/mcp', backend: `${backendUrl}/mcp` },
      { path: '/fixed', backend: `${backendUrl}/fixed` },
      { path: '/legacy', backend: backendUrl, transports: ['sse'] },
    ],
  };
  const start = async () => {
    const store = await createRedisStore({ url: redis.url, keyPrefix: 'gh-session-end:', clock: systemClock, purgeIntervalMs: 0 });
    stores.push(store);
    return startTestGateway({ keyring, publicUrl, store, config, resyncIntervalMs: 60_000 });
  };
  replicaA = await start();
  replicaB = await start();
});

after(async () => {
  await replicaA?.close();
  await replicaB?.close();
  for (const store of stores) await store.close();
  backend?.closeAllConnections();
  await new Promise((resolve) => backend?.close(resolve));
  await redis?.stop();
});

const bearer = (path: string) => mintAccessToken(keyring, publicUrl, { aud: publicUrl + path, sub: 'tenant/alice', gid: 'grant-sessions' });
const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
const ping = { jsonrpc: '2.0', id: 2, method: 'ping' };

async function openSession(replica: TestGateway): Promise<string> {
  const response = await mcpPost(replica.url + '/mcp', await bearer('/mcp'), initialize);
  assert.equal(response.status, 200);
  await response.text();
  const session = response.headers.get('mcp-session-id');
  assert.ok(session);
  return session;
}

/** A GET stream of the session on `replica`; `ended` resolves however it ends (a cut is an error for fetch). */
async function openStream(replica: TestGateway, session: string) {
  const controller = new AbortController();
  const response = await fetch(replica.url + '/mcp', {
    headers: { authorization: `Bearer ${await bearer('/mcp')}`, accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  await reader.read();
  let isEnded = false;
  const ended = (async () => {
    try {
      while (!(await reader.read()).done);
    } catch {
      // cut
    }
    isEnded = true;
  })();
  return { controller, ended, isEnded: () => isEnded };
}

async function post(replica: TestGateway, session: string, message: unknown = ping): Promise<number> {
  const response = await mcpPost(replica.url + '/mcp', await bearer('/mcp'), message, { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' });
  await response.text();
  return response.status;
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

describe('a session ended on one replica', () => {
  /** The first audit record of `replica` that passes `test`, once its batch was written (bounded wait). */
  const auditRecordOn = (replica: { auditLines: string[] }, test: (entry: Record<string, unknown>) => boolean, what: string) =>
    withDeadline(
      (async () => {
        for (;;) {
          const record = replica.auditLines.map((line) => JSON.parse(line) as Record<string, unknown>).find(test);
          if (record) return record;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      5_000,
      what,
    );

  it('cuts its streams on the other replica, audited server_closed, and is refused there without reaching the backend', { timeout: 15_000 }, async () => {
    const ended = await openSession(replicaA);
    const kept = await openSession(replicaA);
    // Replica B serves both sessions first, so it holds their bindings in its cache.
    assert.equal(await post(replicaB, ended), 200);
    assert.equal(await post(replicaB, kept), 200);
    const onB = await openStream(replicaB, ended);
    const otherOnB = await openStream(replicaB, kept);
    const onA = await openStream(replicaA, ended);

    const response = await fetch(replicaA.url + '/mcp', {
      method: 'DELETE',
      headers: { authorization: `Bearer ${await bearer('/mcp')}`, 'mcp-session-id': ended, 'mcp-protocol-version': '2025-11-25' },
    });
    assert.equal(response.status, 200);
    await response.text();

    // The backend holds both streams open; the gateway ends them, on the replica that saw the DELETE and the other.
    await withDeadline(Promise.all([onA.ended, onB.ended]), 5_000, "the ended session's streams closing");
    const cut = await auditRecordOn(replicaB, (entry) => entry.reason === 'session ended', 'the audit record of the cut stream');
    assert.equal(cut.outcome, 'server_closed');
    assert.equal(cut.route, '/mcp');
    // Neither carries a JSON-RPC message: each is named for the trail, the stream and the session's end.
    assert.equal(cut.method, 'stream/listen');
    const deleted = await auditRecordOn(replicaA, (entry) => entry.method === 'session/delete', 'the audit record of the DELETE');
    assert.equal(deleted.outcome, 'allowed');

    const before = seen.length;
    assert.equal(await post(replicaB, ended), 404, 'replica B refuses the ended session');
    assert.deepEqual(seen.slice(before), [], 'without asking the backend');

    assert.equal(otherOnB.isEnded(), false, "another session's stream stays open");
    assert.equal(await post(replicaB, kept), 200);
    otherOnB.controller.abort();
  });

  it('refuses a GET stream its backend answers only after the session ended, on the replica of the DELETE and on the other', { timeout: 15_000 }, async () => {
    for (const [label, replicaOfGet] of [['the same replica', replicaA], ['the other replica', replicaB]] as const) {
      const session = await openSession(replicaA);
      slowGets.add(session);
      const before = seen.length;
      const get = fetch(replicaOfGet.url + '/mcp', {
        headers: { authorization: `Bearer ${await bearer('/mcp')}`, accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
      });
      // The GET is at the backend, waiting for its headers, when the DELETE ends the session.
      await withDeadline(
        (async () => {
          while (!seen.slice(before).includes(`GET /mcp ${session}`)) await new Promise((resolve) => setTimeout(resolve, 10));
        })(),
        5_000,
        'the GET reaching the backend',
      );
      const deleted = await fetch(replicaA.url + '/mcp', {
        method: 'DELETE',
        headers: { authorization: `Bearer ${await bearer('/mcp')}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
      });
      assert.equal(deleted.status, 200);
      await deleted.text();
      const response = await withDeadline(get, 5_000, `the late GET on ${label}`);
      // Answered as a request naming the ended session is, never relayed as an open stream.
      assert.equal(response.status, 404, label);
      await response.text();
    }
  });

  it('serves the streams of a session whose id the backend issues again after its DELETE, on both replicas', { timeout: 15_000 }, async () => {
    const headersOf = async (session?: string) => ({
      authorization: `Bearer ${await bearer('/fixed')}`,
      'mcp-protocol-version': '2025-11-25',
      ...(session === undefined ? {} : { 'mcp-session-id': session }),
    });
    const first = await mcpPost(replicaA.url + '/fixed', await bearer('/fixed'), initialize);
    await first.text();
    assert.equal(first.headers.get('mcp-session-id'), 'fixed-session');
    const deleted = await fetch(replicaA.url + '/fixed', { method: 'DELETE', headers: await headersOf('fixed-session') });
    assert.equal(deleted.status, 200);
    await deleted.text();
    // Its end reached replica B too (its message), and then the backend issues the same id to the next session.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const again = await mcpPost(replicaA.url + '/fixed', await bearer('/fixed'), initialize);
    await again.text();
    assert.equal(again.headers.get('mcp-session-id'), 'fixed-session');
    for (const replica of [replicaA, replicaB]) {
      const controller = new AbortController();
      const stream = await fetch(replica.url + '/fixed', { headers: { ...(await headersOf('fixed-session')), accept: 'text/event-stream' }, signal: controller.signal });
      assert.equal(stream.status, 200, 'the new session\'s stream is its own, not the ended one\'s');
      controller.abort();
    }
  });

  it("refuses the earlier owner's late stream of an id the backend issued again to another user, and serves the new owner's", { timeout: 15_000 }, async () => {
    const bearerOf = (sub: string) => mintAccessToken(keyring, publicUrl, { aud: `${publicUrl}/fixed`, sub, gid: `grant-${sub}` });
    const headersOf = async (sub: string) => ({ authorization: `Bearer ${await bearerOf(sub)}`, 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': 'fixed-session', accept: 'text/event-stream' });
    const init = async (sub: string) => {
      const response = await mcpPost(replicaA.url + '/fixed', await bearerOf(sub), initialize);
      await response.text();
      assert.equal(response.headers.get('mcp-session-id'), 'fixed-session');
    };
    await init('tenant/carol');
    slowGets.add('fixed-session');
    const before = seen.length;
    const late = fetch(replicaB.url + '/fixed', { headers: await headersOf('tenant/carol') });
    await withDeadline(
      (async () => {
        while (!seen.slice(before).includes('GET /fixed fixed-session')) await new Promise((resolve) => setTimeout(resolve, 10));
      })(),
      5_000,
      "carol's GET reaching the backend",
    );
    // The backend issues the id to dave while carol's GET waits for its headers: carol's session is over.
    await init('tenant/dave');
    const refused = await withDeadline(late, 5_000, "carol's late GET");
    assert.equal(refused.status, 404, "carol's stream is not relayed under dave's session");
    await refused.text();
    slowGets.delete('fixed-session');
    for (const replica of [replicaA, replicaB]) {
      const controller = new AbortController();
      const stream = await fetch(replica.url + '/fixed', { headers: await headersOf('tenant/dave'), signal: controller.signal });
      assert.equal(stream.status, 200, "dave's stream is his session's");
      controller.abort();
    }
  });

  it('a legacy session whose stream closed on one replica is refused on the other, which had cached it', { timeout: 15_000 }, async () => {
    const token = await bearer('/legacy');
    const controller = new AbortController();
    const stream = await fetch(replicaA.url + '/legacy/sse', { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    assert.equal(stream.status, 200);
    const reader = stream.body!.getReader();
    let received = '';
    while (!received.includes('\n\n')) received += Buffer.from((await reader.read()).value ?? []).toString();
    const endpoint = /event: endpoint\ndata: (\S+)/.exec(received)?.[1];
    assert.ok(endpoint?.startsWith(`${publicUrl}/legacy/messages?sessionId=`), received);
    const onB = endpoint!.replace(publicUrl, replicaB.url);
    const message = async () => {
      const response = await mcpPost(onB, token, ping);
      await response.text();
      return response.status;
    };
    assert.equal(await message(), 202, 'replica B routes the message (and caches the binding)');

    controller.abort();
    const before = seen.length;
    const refused = await withDeadline(
      (async () => {
        for (;;) {
          const status = await message();
          if (status !== 202) return status;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      5_000,
      'replica B refusing the closed legacy session',
    );
    assert.equal(refused, 404);
    // Until the end reached it, replica B may have routed a message or two; none after the refusal.
    const routed = seen.slice(before).length;
    assert.equal(await message(), 404);
    assert.equal(seen.slice(before).length, routed);
  });
});
