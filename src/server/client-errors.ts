import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { ProtocolError } from '../errors/protocol-error.ts';
import { renderErrorBody } from '../errors/render-error.ts';

/**
 * Requests Node's HTTP parser rejects before Fastify sees them (malformed request line, headers too large, a client
 * too slow to send its headers). The answer is written to the socket directly, in the same OAuth JSON shape as every
 * other error, instead of Fastify's default body; nothing from the request is echoed.
 */

type ConnectionError = Error & { code?: string };

function statusFor(error: ConnectionError): number {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  if (error.code === 'HPE_HEADER_OVERFLOW') return 431;
  return 400;
}

export function handleClientError(error: ConnectionError, socket: Socket): void {
  // A reset connection has nobody left to answer (https://nodejs.org/api/http.html#event-clienterror).
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const status = statusFor(error);
  const description = status === 431 ? 'The request headers are too large.' : status === 408 ? 'The request took too long to arrive.' : 'The HTTP request is malformed.';
  writeRefusal(socket, new ProtocolError('invalid_request', description, { status }));
  socket.destroy(error);
}

/**
 * A CONNECT request (a tunnel through a forward proxy, which Gatehouse is not): Node hands it to the server's `connect`
 * event instead of a route, and with no listener there closed the connection without a word. It is answered 501, the
 * status for a method served for no resource at all (RFC 9110 §15.6.2; a 405 would have to name the methods its
 * target serves, and an authority-form target names none), and the connection ends once the answer is written.
 */
export function refuseConnect(_request: unknown, socket: Socket): void {
  // Node's server takes its own error listener off a socket it hands to `connect`: a reset from the client would be
  // an unhandled error, and the process's end.
  socket.on('error', () => socket.destroy());
  writeRefusal(socket, new ProtocolError('invalid_request', 'CONNECT is not served here: Gatehouse is no forward proxy.', { status: 501 }));
  // The server's sockets are half-open capable and this one has no reader left: read and drop what the client still
  // sends, and destroy it at a fixed deadline (not an idle timeout, which each byte trickled in would reset), so a
  // CONNECT cannot hold a descriptor for ever.
  socket.resume();
  const deadline = setTimeout(() => socket.destroy(), 5_000).unref();
  socket.once('close', () => clearTimeout(deadline));
  socket.end();
}

function writeRefusal(socket: Socket, error: ProtocolError): void {
  if (!socket.writable) return;
  const { body } = renderErrorBody(error);
  socket.write(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
  );
}
