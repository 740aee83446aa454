import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * BENCH_TRACING=1: an OTLP/HTTP endpoint that accepts every export and discards it, so Gatehouse runs with tracing
 * on (spans created, batched, encoded and sent) without a collector's own cost landing on the machine under test.
 */
export async function startTraceSink(): Promise<{ url: string; exports: () => number; close: () => Promise<void> }> {
  let exports = 0;
  const server = createServer((request, response) => {
    request.resume().on('end', () => {
      exports += 1;
      response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports: () => exports,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
