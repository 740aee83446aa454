import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback forwarder that adds `Authorization: Bearer <token>` to every request, for clients that cannot send a
 * token (the conformance suite's `server` command). Everything else passes untouched and streams both ways: the
 * method, path, body, every header — a Host or Origin naming another site too, so the gateway sees exactly what the
 * client sent (the DNS-rebinding scenario depends on it). Only a Host or Origin naming the shim itself is rewritten
 * to the gateway's: the client addressed the gateway through the shim, so its own origin is the gateway's public one
 * (the gateway refuses other origins, as a browser-reachable server must).
 */
export interface BearerShim {
  url: string;
  close(): Promise<void>;
}

export async function startBearerShim(target: string, token: () => string): Promise<BearerShim> {
  const upstream = new URL(target);
  const ownHosts = new Set<string>();
  const server: Server = createServer((req, res) => {
    const headers = { ...req.headers, authorization: `Bearer ${token()}` };
    if (ownHosts.has(req.headers.host ?? '')) headers.host = upstream.host;
    const origin = req.headers.origin;
    if (origin !== undefined && URL.canParse(origin) && ownHosts.has(new URL(origin).host)) headers.origin = upstream.origin;
    const outgoing = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (incoming) => {
      res.writeHead(incoming.statusCode ?? 502, incoming.statusMessage, incoming.rawHeaders);
      incoming.pipe(res);
    });
    outgoing.once('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    // The client going away reaches the gateway as a closed connection, as it would without the shim.
    res.once('close', () => outgoing.destroy());
    req.pipe(outgoing);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  for (const name of ['127.0.0.1', 'localhost']) ownHosts.add(`${name}:${port}`);
  return {
    url: `http://localhost:${port}${upstream.pathname}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
