import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { describe, it, mock } from 'node:test';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { limitRequestBody, readRequestBody } from '../../src/server/request-body.ts';

/**
 * The server's one body reader: cap, deadline, and no timer that outlives the read (a deadline armed before a
 * failure once fired on a body that was never there and took the process down).
 */
const limits = { limit: 8, timeoutMs: 1_000 };

describe('readRequestBody', () => {
  it('reads an absent body as empty and leaves no deadline behind', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      assert.deepEqual(await readRequestBody(undefined, limits), Buffer.alloc(0));
      assert.doesNotThrow(() => mock.timers.tick(limits.timeoutMs * 2));
    } finally {
      mock.timers.reset();
    }
  });

  it('reads a body within the limit and clears its deadline', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      assert.equal((await readRequestBody(Readable.from([Buffer.from('{"a":'), Buffer.from('1}')]), limits)).toString(), '{"a":1}');
      assert.doesNotThrow(() => mock.timers.tick(limits.timeoutMs * 2));
    } finally {
      mock.timers.reset();
    }
  });

  it('refuses a declared or actual length over the limit with 413', async () => {
    const refused = (error: unknown) => error instanceof ProtocolError && error.status === 413 && error.headers.connection === 'close';
    await assert.rejects(readRequestBody(Readable.from([Buffer.from('x')]), { ...limits, declaredLength: '9' }), refused);
    await assert.rejects(readRequestBody(Readable.from([Buffer.alloc(5), Buffer.alloc(5)]), limits), refused);
  });

  it('answers 408 when the body does not arrive in time', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const trickle = new PassThrough();
      trickle.write('{');
      const reading = readRequestBody(trickle, limits);
      mock.timers.tick(limits.timeoutMs);
      await assert.rejects(reading, (error: unknown) => error instanceof ProtocolError && error.status === 408);
    } finally {
      mock.timers.reset();
    }
  });

  it('refuses a body whose stream fails with 400', async () => {
    const failing = new PassThrough();
    const reading = readRequestBody(failing, limits);
    failing.destroy(new Error('aborted'));
    await assert.rejects(reading, (error: unknown) => error instanceof ProtocolError && error.status === 400);
  });
});

describe('limitRequestBody', () => {
  it('does not crash the process when its deadline fires on a pass-through nobody consumed', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const capped = limitRequestBody(new PassThrough(), limits);
      mock.timers.tick(limits.timeoutMs);
      assert.equal((capped.errored as ProtocolError | null)?.status, 408);
    } finally {
      mock.timers.reset();
    }
  });
});
