import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { buildServer } from '../../src/server/app.ts';
import { installGracefulShutdown, type GracefulShutdown } from '../../src/server/graceful-shutdown.ts';
import { createServerTestContext, type FakeStore } from '../support/server-context.ts';

/**
 * Test-only routes: `/slow` answers when the test releases it; `/stream` is an open SSE stream the test writes to
 * and may end. Both signal when the server has started handling them, so nothing here depends on timing.
 */
function streamingPart(state: { releaseSlow?: () => void; slowStarted: PromiseWithResolvers<void>; stream: PassThrough; streamStarted: PromiseWithResolvers<void> }): FastifyPluginAsync {
  return async (app) => {
    app.get('/slow', async () => {
      const released = new Promise<void>((resolve) => {
        state.releaseSlow = resolve;
      });
      state.slowStarted.resolve();
      await released;
      return { finished: true };
    });
    // Fastify sends a streamed reply's headers with its first chunk, so tests write one before awaiting the response.
    app.get('/stream', async (_request, reply) => {
      state.streamStarted.resolve();
      reply.type('text/event-stream').header('cache-control', 'no-store');
      return reply.send(state.stream);
    });
  };
}

function get(base: string, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
}

async function readBody(res: IncomingMessage): Promise<{ text: string; complete: boolean }> {
  let text = '';
  res.setEncoding('utf8');
  try {
    for await (const chunk of res) text += chunk;
    return { text, complete: res.complete };
  } catch {
    return { text, complete: false };
  }
}

/** New work is refused: the listener is closed (ECONNREFUSED), or a connection that slipped in gets our 503. */
async function assertNotAccepted(attempt: Promise<IncomingMessage>): Promise<void> {
  const outcome = await attempt.then(
    (res) => ({ res }),
    (error: NodeJS.ErrnoException) => ({ error }),
  );
  if ('error' in outcome) {
    assert.equal(outcome.error.code, 'ECONNREFUSED');
    return;
  }
  assert.equal(outcome.res.statusCode, 503);
  assert.equal(JSON.parse((await readBody(outcome.res)).text).error, 'temporarily_unavailable');
}

interface Harness {
  app: FastifyInstance;
  base: string;
  store: FakeStore;
  signals: EventEmitter;
  lifecycle: GracefulShutdown;
  state: Parameters<typeof streamingPart>[0];
}

async function startServer(graceMs: number): Promise<Harness> {
  const { ctx, store } = createServerTestContext();
  const state = {
    slowStarted: Promise.withResolvers<void>(),
    stream: new PassThrough(),
    streamStarted: Promise.withResolvers<void>(),
  };
  const app = await buildServer(ctx, { plugins: [streamingPart(state)] });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const signals = new EventEmitter();
  const lifecycle = installGracefulShutdown(app, { graceMs, logger: ctx.logger, closeResources: () => store.close(), signals });
  return { app, base, store, signals, lifecycle, state };
}

describe('graceful shutdown', () => {
  let harness: Harness | undefined;
  afterEach(async () => {
    harness?.state.releaseSlow?.();
    harness?.state.stream.end();
    await harness?.lifecycle.shutdown('test cleanup');
    harness = undefined;
  });

  it('on SIGTERM stops accepting, lets an in-flight request finish, closes the store and exits 0', async () => {
    harness = await startServer(60_000);
    const { base, signals, state, store, lifecycle } = harness;
    const inFlight = get(base, '/slow');
    await state.slowStarted.promise;

    signals.emit('SIGTERM');
    await assertNotAccepted(get(base, '/healthz'));
    assert.equal(store.closed, false, 'the store stays open while a request is in flight');

    state.releaseSlow?.();
    const res = await inFlight;
    assert.equal(res.statusCode, 200);
    assert.deepEqual(JSON.parse((await readBody(res)).text), { finished: true });
    assert.equal(await lifecycle.stopped, 0);
    assert.equal(store.closed, true);
  });

  it('lets an open stream finish within the grace period', async () => {
    harness = await startServer(60_000);
    const { base, signals, state, store, lifecycle } = harness;
    const response = get(base, '/stream');
    await state.streamStarted.promise;
    state.stream.write('data: one\n\n');
    const res = await response;

    signals.emit('SIGINT');
    state.stream.write('data: two\n\n');
    state.stream.end();
    const body = await readBody(res);
    assert.equal(body.complete, true);
    assert.equal(body.text, 'data: one\n\ndata: two\n\n');
    assert.equal(await lifecycle.stopped, 0);
    assert.equal(store.closed, true);
  });

  it('cuts a stream still open at the deadline, then closes the store and exits 0', async () => {
    harness = await startServer(50);
    const { base, state, store, lifecycle } = harness;
    const response = get(base, '/stream');
    await state.streamStarted.promise;
    state.stream.write('data: first\n\n');
    const res = await response;
    const body = readBody(res);

    const exitCode = await lifecycle.shutdown('test');
    assert.equal(exitCode, 0);
    assert.equal(store.closed, true);
    const received = await body;
    assert.equal(received.complete, false, 'the stream was cut, not ended normally');
    assert.equal(received.text, 'data: first\n\n');
  });

  it('a second signal cuts open streams at once', async () => {
    harness = await startServer(60_000);
    const { base, signals, state, lifecycle } = harness;
    const response = get(base, '/stream');
    await state.streamStarted.promise;
    state.stream.write('data: first\n\n');
    const body = readBody(await response);

    signals.emit('SIGTERM');
    signals.emit('SIGTERM');
    assert.equal(await lifecycle.stopped, 0);
    assert.equal((await body).complete, false);
  });

  it('removes its signal listeners once stopped', async () => {
    harness = await startServer(1_000);
    const { signals, lifecycle } = harness;
    assert.equal(signals.listenerCount('SIGTERM'), 1);
    await lifecycle.shutdown('test');
    assert.equal(signals.listenerCount('SIGTERM'), 0);
    assert.equal(signals.listenerCount('SIGINT'), 0);
  });
});
