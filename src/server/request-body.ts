import { Transform, type Readable } from 'node:stream';
import { ProtocolError } from '../errors/protocol-error.ts';

/**
 * The one place request bodies are read: capped at `limit` bytes and bounded by `timeoutMs`, so a client trickling
 * a body (slow loris) or sending an endless one cannot hold a connection and memory for longer than that.
 *
 * A body that is absent (`Content-Length: 0`, or no body at all: Fastify then never hands the route a stream) is an
 * empty body, not a stream to wait on. The deadline is armed only once the body is really being read, and cleared
 * however reading ends, so no timer outlives the request (a stray one once fired on a stream that was never there).
 */
export interface BodyLimits {
  limit: number;
  timeoutMs: number;
  /** The request's `Content-Length`: a body declared larger than the limit is refused before a byte is read. */
  declaredLength?: string | undefined;
}

/** The refusal goes out while the body may still be arriving, so the connection cannot be reused: `Connection: close`. */
function refuse(code: 'payload_too_large' | 'invalid_request', description: string, status?: number): ProtocolError {
  return new ProtocolError(code, description, { status, headers: { connection: 'close' } });
}

const tooLarge = (limit: number) => refuse('payload_too_large', `The request body is larger than ${limit} bytes.`);
const tooSlow = () => refuse('invalid_request', 'The request body did not arrive in time.', 408);

/** Refuses a declared length over the limit (RFC 9110 §15.5.14) without reading anything. */
export function checkDeclaredLength(limits: BodyLimits): void {
  if (limits.declaredLength !== undefined && Number(limits.declaredLength) > limits.limit) throw tooLarge(limits.limit);
}

/**
 * Reads the whole body into memory (JSON-RPC messages, form posts). Listeners on the request itself, not a
 * pass-through stage and an async iterator: this runs on every MCP POST, and a small body has usually arrived with
 * its headers.
 */
export async function readRequestBody(stream: Readable | undefined, limits: BodyLimits): Promise<Buffer> {
  checkDeclaredLength(limits);
  if (stream === undefined || stream.readableEnded) return Buffer.alloc(0);
  if (stream.errored) throw unreadable();
  const { limit, timeoutMs } = limits;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (error?: ProtocolError) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      if (!error) return resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      // A refused body is left unread: the client gets its answer now and the connection is closed after it.
      stream.pause();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return finish(tooLarge(limit));
      chunks.push(chunk);
    };
    const onEnd = () => finish();
    const onError = () => finish(unreadable());
    // A request whose whole body came with its headers (Node's `complete`: the usual small MCP POST) has nothing
    // left to wait for, so it needs no deadline: no timer to arm and clear per request.
    const timer = (stream as Readable & { complete?: boolean }).complete === true ? undefined : setTimeout(() => finish(tooSlow()), timeoutMs);
    // `on`, not `once`: finish() removes them all, and `once` would wrap each in a closure of its own.
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
}

const unreadable = () => refuse('invalid_request', 'The request body could not be read.');

/**
 * A pass-through for bodies that are streamed on (plain HTTP routes): fails before passing the chunk that would
 * cross `limit`, so a body without (or lying about) `Content-Length` costs the receiver at most `limit` bytes, and
 * fails when the whole body has not arrived within `timeoutMs`. `source` is the request stream: a read error on it
 * fails the pass-through too (pipe() does not forward errors).
 */
export function limitRequestBody(source: Readable, limits: BodyLimits & { onBytes?: (bytes: number) => void }): Transform {
  const { limit, timeoutMs, onBytes } = limits;
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const stream: Transform = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > limit) return callback(tooLarge(limit));
      onBytes?.(chunk.length);
      callback(null, chunk);
    },
    flush(callback) {
      clearTimeout(timer);
      callback();
    },
    destroy(error, callback) {
      clearTimeout(timer);
      source.off('error', onSourceError);
      callback(error);
    },
  });
  const onSourceError = () => stream.destroy(unreadable());
  source.once('error', onSourceError);
  // The consumer (a reader, undici) sees the refusal through its own listener, and `errored` keeps it for the
  // handler; this one only keeps a deadline that fires on a pass-through nobody consumed from crashing the process.
  stream.on('error', () => {});
  timer = setTimeout(() => stream.destroy(tooSlow()), timeoutMs);
  return stream;
}
