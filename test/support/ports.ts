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
 * and directory API on one port). And test files running side by side draw from ranges apart (see portRange).
 */
export async function freePort(): Promise<number> {
  const { floor, ceiling } = portRange();
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = floor + Math.floor(Math.random() * (ceiling - floor));
    if (handedOut.has(candidate)) continue;
    if (await isFree(candidate)) return handOut(candidate);
  }
  return handOut(await listenedPort(0));
}

const handedOut = new Set<number>();

/**
 * This process's ports: 12,000 below the ephemeral range, or the 1,000 of them that are its test runner slot's.
 * Each test file is a process with a set of its own, so two files running side by side could both find a port free
 * between the other's check and its listen, and one of them then failed with EADDRINUSE. The runner numbers the
 * files running at once 1, 2, … (NODE_TEST_WORKER_ID), which gives each a slice no other running file draws from
 * (past twelve files at once, slices are shared again).
 */
function portRange(): { floor: number; ceiling: number } {
  const top = ephemeralRangeStart();
  const bottom = Math.max(1024, top - 12_000);
  const slot = Number(process.env.NODE_TEST_WORKER_ID);
  const slices = Math.floor((top - bottom) / SLICE_PORTS);
  if (!Number.isInteger(slot) || slot < 1 || slices < 1) return { floor: bottom, ceiling: top };
  const floor = bottom + ((slot - 1) % slices) * SLICE_PORTS;
  return { floor, ceiling: floor + SLICE_PORTS };
}

const SLICE_PORTS = 1_000;

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
