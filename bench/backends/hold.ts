import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A backend that answers every request with an SSE stream it keeps open (the idle-streams memory run). */
export async function startHoldBackend(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': open\n\n');
    const timer = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    req.socket.once('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', 8192, resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, server };
}
