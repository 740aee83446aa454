import { fork, type ChildProcess } from 'node:child_process';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { rssBytes } from './process-stats.ts';
import { openSseStreams } from './sse-streams.ts';

/**
 * `node bench/stream-cost.ts [streams] [node options…]`: what one idle SSE stream costs a Node process that does
 * nothing but hold it — the part of the bench's "per stream above idle" no Node gateway can go below. Each design
 * runs in a process of its own (started with the given Node options, e.g. `--max-semi-space-size=16`, the image's)
 * and holds `streams` streams (default 9,000) opened through it 250 at a time to a backend that holds them open:
 *
 * - `tcp`: a `net` server that writes an SSE response head itself: one socket, no HTTP parser;
 * - `node:http`: an `http` server holding an SSE response: one socket, the inbound half of any gateway built on
 *   node:http (Fastify is);
 * - `tcp → tcp`: raw sockets both ways, the backend's bytes piped through: two sockets, no HTTP at all;
 * - `node:http → node:http`: node:http in, an `http.Agent` keep-alive connection out, the body piped;
 * - `node:http → undici`: node:http in, an undici Pool out, the body piped: the Node floor of the bench.
 *
 * Printed per design: RSS peak above idle per stream (as the bench counts it), and after a full collection the RSS
 * and the JS heap in use per stream.
 */
const DESIGNS = ['tcp', 'node:http', 'tcp → tcp', 'node:http → node:http', 'node:http → undici'] as const;
type Design = (typeof DESIGNS)[number];

const SSE_HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n';
const FIRST_EVENT = ': open\n\n';

interface MemoryReport {
  rss: number;
  heapUsed: number;
}

function listenAndReport(server: Server | ReturnType<typeof createTcpServer>): void {
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port));
  process.on('message', (message) => {
    if (message === 'collect') (globalThis as { gc?: () => void }).gc?.();
    const { rss, heapUsed } = process.memoryUsage();
    process.send!({ rss, heapUsed } satisfies MemoryReport);
  });
}

function holdSse(_request: unknown, response: import('node:http').ServerResponse): void {
  response.writeHead(200, { 'content-type': 'text/event-stream' });
  response.write(FIRST_EVENT);
}

/** The process a design runs in (this file again, forked with the design's name). */
function runDesign(design: Design | 'backend', backendPort: number): void {
  const backendGet = 'GET / HTTP/1.1\r\nhost: backend\r\naccept: text/event-stream\r\n\r\n';
  switch (design) {
    case 'backend':
      createServer(holdSse).listen(0, '127.0.0.1', function (this: Server) {
        process.send!((this.address() as AddressInfo).port);
      });
      return;
    case 'tcp':
      return listenAndReport(
        createTcpServer((socket) => socket.once('data', () => socket.write(`${SSE_HEAD}${FIRST_EVENT.length.toString(16)}\r\n${FIRST_EVENT}\r\n`))),
      );
    case 'node:http':
      return listenAndReport(createServer(holdSse));
    case 'tcp → tcp':
      return listenAndReport(
        createTcpServer((socket) =>
          socket.once('data', () => {
            const backend = connect(backendPort, '127.0.0.1', () => backend.write(backendGet));
            backend.pipe(socket);
          }),
        ),
      );
    case 'node:http → node:http': {
      const agent = new Agent({ keepAlive: true });
      return listenAndReport(
        createServer((_request, response) => {
          httpRequest({ host: '127.0.0.1', port: backendPort, agent, headers: { accept: 'text/event-stream' } }, (backend) => {
            response.writeHead(200, { 'content-type': 'text/event-stream' });
            backend.pipe(response);
          }).end();
        }),
      );
    }
    case 'node:http → undici': {
      const pool = new Pool(`http://127.0.0.1:${backendPort}`);
      return listenAndReport(
        createServer((_request, response) => {
          void pool.request({ method: 'GET', path: '/', headers: { accept: 'text/event-stream' } }).then((backend) => {
            response.writeHead(200, { 'content-type': 'text/event-stream' });
            backend.body.pipe(response);
          });
        }),
      );
    }
  }
}

function start(role: Design | 'backend', backendPort: number, nodeOptions: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(new URL(import.meta.url).pathname, ['--role', role, String(backendPort)], { execArgv: [...nodeOptions, '--expose-gc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (port) => resolve({ child, port: port as number }));
    child.once('error', reject);
  });
}

function ask(child: ChildProcess, message: 'collect' | 'measure'): Promise<MemoryReport> {
  return new Promise((resolve) => {
    child.once('message', (report) => resolve(report as MemoryReport));
    child.send(message);
  });
}

async function measure(count: number, nodeOptions: string[]): Promise<void> {
  const backend = await start('backend', 0, []);
  process.stdout.write(`${count} idle SSE streams, Node options: ${nodeOptions.join(' ') || '(none)'}\n\n`);
  process.stdout.write('| design | opened | RSS peak above idle per stream | after a full GC: RSS per stream | JS heap per stream |\n|---|---:|---:|---:|---:|\n');
  for (const design of DESIGNS) {
    const target = await start(design, backend.port, nodeOptions);
    const pids = [target.child.pid!];
    const idle = await ask(target.child, 'collect');
    let peak = idle.rss;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pids))), 100);
    const streams = await openSseStreams(`http://127.0.0.1:${target.port}/`, {}, count, 120_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    clearInterval(sampler);
    peak = Math.max(peak, rssBytes(pids));
    const collected = await ask(target.child, 'collect');
    const perStream = (bytes: number) => `${(bytes / streams.opened / 1024).toFixed(1)} KB`;
    process.stdout.write(
      `| ${design} | ${streams.opened} | ${perStream(peak - idle.rss)} | ${perStream(collected.rss - idle.rss)} | ${perStream(collected.heapUsed - idle.heapUsed)} |\n`,
    );
    streams.close();
    target.child.kill();
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  backend.child.kill();
}

const roleAt = process.argv.indexOf('--role');
if (roleAt !== -1) {
  runDesign(process.argv[roleAt + 1] as Design | 'backend', Number(process.argv[roleAt + 2]));
} else {
  const [countArg, ...nodeOptions] = process.argv.slice(2);
  await measure(Number(countArg ?? 9_000), nodeOptions);
}
