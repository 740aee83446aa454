import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cappedFetch, ResponseTooLargeError } from '../../src/runtime/capped-fetch.ts';

/** Answers read whole from a provider are bounded, whether the length is declared or the body just keeps coming. */
describe('cappedFetch', () => {
  const answering = (response: () => Response): typeof globalThis.fetch => async () => response();
  const streamOf = (bytes: number, chunk = 64 * 1024) => {
    let sent = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= bytes) return controller.close();
        const size = Math.min(chunk, bytes - sent);
        sent += size;
        controller.enqueue(new Uint8Array(size).fill(0x20));
      },
    });
  };

  it('passes an answer within the limit through, status and headers kept', async () => {
    const fetch = cappedFetch(answering(() => Response.json({ keys: [] }, { status: 201, headers: { 'x-kept': 'yes' } })), 1024);
    const response = await fetch('https://idp.example/jwks');
    assert.equal(response.status, 201);
    assert.equal(response.headers.get('x-kept'), 'yes');
    assert.deepEqual(await response.json(), { keys: [] });
  });

  it('refuses an answer that declares a length over the limit before reading it', async () => {
    const fetch = cappedFetch(answering(() => new Response(streamOf(10), { headers: { 'content-length': '5000' } })), 1024);
    await assert.rejects(fetch('https://idp.example/jwks'), ResponseTooLargeError);
  });

  it("leaves a HEAD answer alone: its Content-Length is the GET's", async () => {
    const fetch = cappedFetch(answering(() => new Response(null, { status: 200, headers: { 'content-length': '50000000' } })), 1024);
    assert.equal((await fetch('https://backend.example/mcp', { method: 'HEAD' })).status, 200);
  });

  it('fails the read of a body that grows past the limit (no length declared)', async () => {
    const fetch = cappedFetch(answering(() => new Response(streamOf(4 * 1024 * 1024))), 1024 * 1024);
    const response = await fetch('https://idp.example/jwks');
    await assert.rejects(response.text(), (error: unknown) => error instanceof ResponseTooLargeError && /idp\.example/.test(error.message));
  });
});
