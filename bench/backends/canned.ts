import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The cheapest backend there is: a bare `node:http` server that drains the request and answers every POST with the
 * same JSON-RPC result, in one write with its length. Against it, a target's figures are its own proxy cost, not the
 * MCP SDK's.
 */
const reply = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'hello' }] } }));

export async function startCannedBackend(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': reply.length });
      res.end(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', 1024, resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, server };
}
