import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startMcpBackend } from '../test/support/mcp-backends.ts';

/**
 * Child process 1 of the benchmark: the backends, built with the same SDK fixtures as the tests, plus a plain SSE
 * server that holds streams open (for the 5,000-stream memory run). Prints their URLs as one JSON line.
 */
// The fixtures record request headers for tests; under load they would only pile up.
const json = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json', recordHeaders: false });
const sse = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'sse', recordHeaders: false });
const legacy = await startMcpBackend({ kind: 'v1-sse', recordHeaders: false });

const hold: Server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  res.write(': open\n\n');
  const timer = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  req.once('close', () => clearInterval(timer));
});
hold.maxConnections = 20_000;
await new Promise<void>((resolve) => hold.listen(0, '127.0.0.1', 1024 * 8, resolve));

process.stdout.write(
  `${JSON.stringify({ json: json.url, sse: sse.url, legacy: legacy.url, hold: `http://127.0.0.1:${(hold.address() as AddressInfo).port}/hold` })}\n`,
);
process.on('SIGTERM', () => process.exit(0));
