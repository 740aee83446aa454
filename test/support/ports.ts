import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * A port nothing listens on right now, on 127.0.0.1: for servers whose URL must be known before they start (a
 * public URL, an audience, a redirect URI). Tests and the bench use only these, so `npm test` runs beside a running
 * demo.
 *
 * Picked below the kernel's ephemeral range, not by listening on port 0: a port from that range, closed again until
 * the server that wanted it listens, could meanwhile be the local port of any outgoing connection of the test files
 * running in parallel — and the server's listen failed with EADDRINUSE (seen in CI). Below the range the kernel never
 * hands a port out by itself; each candidate is still tried, so one in use is skipped.
 *
 * A port is handed out once per process: a test that asks for four ports before any of them listens (the demo's
 * parts) was otherwise given the same one twice now and then (a CI run's demo refused to start: its identity provider
 * and directory API on one port).
 */
export async function freePort(): Promise<number> {
  const ceiling = ephemeralRangeStart();
  const floor = Math.max(1024, ceiling - 12_000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = floor + Math.floor(Math.random() * (ceiling - floor));
    if (handedOut.has(candidate)) continue;
    if (await isFree(candidate)) return handOut(candidate);
  }
  return handOut(await listenedPort(0));
}

const handedOut = new Set<number>();

function handOut(port: number): number {
  handedOut.add(port);
  return port;
}

/** The first port of Linux's ephemeral range (`ip_local_port_range`); the IANA range's start elsewhere. */
function ephemeralRangeStart(): number {
  try {
    const start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > 2048 ? start : 49_152;
  } catch {
    return 49_152;
  }
}

const isFree = (port: number): Promise<boolean> => listenedPort(port).then(() => true, () => false);

function listenedPort(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}
