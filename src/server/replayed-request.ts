import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';

/**
 * The request to hand to oidc-provider (Gatehouse's, or the demo's local IdP) once its body was read: a copy of the raw request (whose stream is consumed)
 * carrying those bytes, with everything Koa and the provider read from a request (method, URL, headers, socket) and
 * the real length in place of a chunked encoding. Without a body, the raw request itself.
 */
export function withReadBody(raw: IncomingMessage, body: Buffer | undefined): IncomingMessage {
  if (body === undefined) return raw;
  const headers = { ...raw.headers, 'content-length': String(body.length) };
  delete headers['transfer-encoding'];
  const replay = new Readable({ read() {} });
  replay.push(body);
  replay.push(null);
  const { method, url, httpVersion, httpVersionMajor, httpVersionMinor, socket, rawHeaders } = raw;
  const { originalUrl } = raw as IncomingMessage & { originalUrl?: string };
  const request = { method, url, originalUrl, httpVersion, httpVersionMajor, httpVersionMinor, socket, connection: socket, rawHeaders, headers, complete: true };
  return Object.assign(replay, request) as unknown as IncomingMessage;
}
