import type { Readable } from 'node:stream';
import { ProtocolError } from './errors.ts';

/**
 * Reads a request body up to `limit` bytes within `timeoutMs`: a client trickling a body (slow loris) or sending an
 * endless one cannot hold a connection and memory for longer than that. The cap holds on the bytes actually read,
 * whatever `Content-Length` says and when there is none (chunked). The one body reader for bodies Gatehouse reads
 * itself: MCP POSTs (proxy) and the OAuth endpoints handed to oidc-provider (authorization).
 */
export function readBody(stream: Readable, options: { limit: number; timeoutMs: number; declaredLength?: string | undefined }): Promise<Buffer> {
  const { limit, timeoutMs, declaredLength } = options;
  // The refusal is sent while the body is still arriving, so the connection cannot be reused: `Connection: close`.
  const refuse = (code: 'payload_too_large' | 'invalid_request', description: string, status?: number) =>
    new ProtocolError(code, description, { status, headers: { connection: 'close' } });
  const tooLarge = () => refuse('payload_too_large', `The request body is larger than ${limit} bytes.`);
  if (declaredLength !== undefined && Number(declaredLength) > limit) return Promise.reject(tooLarge());

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (error: ProtocolError | undefined) => {
      clearTimeout(timer);
      stream.off('data', onData).off('end', onEnd).off('error', onError);
      if (error) {
        stream.pause();
        reject(error);
      } else {
        resolve(Buffer.concat(chunks, size));
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return finish(tooLarge());
      chunks.push(chunk);
    };
    const onEnd = () => finish(undefined);
    const onError = () => finish(refuse('invalid_request', 'The request body could not be read.'));
    const timer = setTimeout(() => finish(refuse('invalid_request', 'The request body did not arrive in time.', 408)), timeoutMs);
    stream.on('data', onData).once('end', onEnd).once('error', onError);
  });
}
