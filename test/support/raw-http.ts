import { connect } from 'node:net';

/**
 * Raw HTTP/1.1 exchanges, for what `fetch` and `inject` cannot send: malformed requests and repeated headers
 * (`fetch` joins a repeated header into one).
 */

/**
 * Sends raw bytes and returns everything the server wrote before closing the connection. The client does not
 * half-close: a proxy may treat that as the client leaving; the server closes (`Connection: close`, or an error).
 */
export function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.on('close', () => resolve(received));
    // A server may answer and close before the whole request is written (an early 413): what it sent counts.
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? resolve(received) : reject(error)));
    socket.write(bytes);
  });
}

export function parseRawResponse(raw: string): { status: number; headers: string; body: string } {
  // Interim responses (`100 Continue` to an `Expect`) come before the real one.
  const final = raw.replace(/^(?:HTTP\/1\.1 1\d\d [^\r]*\r\n(?:[^\r]+\r\n)*\r\n)+/, '');
  const [head = '', ...rest] = final.split('\r\n\r\n');
  const body = rest.join('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head.toLowerCase(), body };
}

/** One request with `headers` as name/value pairs, in order, repeated names kept; `Connection: close` is added. */
export async function rawRequest(
  url: string,
  options: { method?: string; headers: Array<[string, string]>; body?: string },
): Promise<{ status: number; headers: string; body: string }> {
  const target = new URL(url);
  const body = options.body ?? '';
  const lines = [`${options.method ?? 'GET'} ${target.pathname}${target.search} HTTP/1.1`];
  for (const [name, value] of options.headers) lines.push(`${name}: ${value}`);
  if (!options.headers.some(([name]) => name.toLowerCase() === 'host')) lines.push(`Host: ${target.host}`);
  if (body !== '') lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  lines.push('Connection: close');
  return parseRawResponse(await rawExchange(Number(target.port), `${lines.join('\r\n')}\r\n\r\n${body}`));
}
