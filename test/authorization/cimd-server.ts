import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { generate } from 'selfsigned';

/**
 * A local HTTPS server standing in for the web servers that host Client ID Metadata Documents. Its certificate is
 * self-signed for `cimd.test`; tests trust it through the guard's extra CA, and resolve `cimd.test` to 127.0.0.1
 * through the guard's injected resolver, with the loopback exception allowed for that one host only.
 */
export const CIMD_HOST = 'cimd.test';

export interface CimdServer {
  port: number;
  ca: string;
  /** Documents by path; a function gets the request URL it is served for. */
  documents: Map<string, (clientId: string) => unknown>;
  /** How many requests reached the server (to prove a refused fetch never connected). */
  requests: number;
  url(path: string): string;
  close(): Promise<void>;
}

export async function startCimdServer(): Promise<CimdServer> {
  const pems = await generate([{ name: 'commonName', value: CIMD_HOST }], {
    keySize: 2048,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: CIMD_HOST }] },
    ],
  });
  const documents = new Map<string, (clientId: string) => unknown>();
  let port = 0;
  const state = { requests: 0 };
  const server: Server = createServer({ key: pems.private, cert: pems.cert }, (request, response) => {
    state.requests += 1;
    const path = request.url ?? '/';
    if (path === '/redirect') {
      response.writeHead(302, { location: `https://${CIMD_HOST}:${port}/client.json` }).end();
      return;
    }
    if (path === '/redirect-internal') {
      response.writeHead(302, { location: 'https://169.254.169.254/latest/meta-data/' }).end();
      return;
    }
    if (path === '/huge') {
      // 10 MB, streamed in 64 KB chunks without a Content-Length, so only a streaming cap can stop it.
      response.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      const pump = () => {
        while (sent < 10 * 1024 * 1024) {
          sent += chunk.length;
          if (!response.write(chunk)) {
            response.once('drain', pump);
            return;
          }
        }
        response.end();
      };
      response.on('error', () => undefined);
      pump();
      return;
    }
    if (path.startsWith('/slow/')) {
      // `/slow/<ms>/<document path>`: the document, after a wait (a time limit longer than the provider's own 2.5 s).
      const [, , ms = '0', ...rest] = path.split('/');
      const slow = documents.get(`/${rest.join('/')}`);
      const timer = setTimeout(() => {
        if (slow === undefined) response.writeHead(404).end();
        else response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(slow(`https://${CIMD_HOST}:${port}${path}`)));
      }, Number(ms));
      response.on('close', () => clearTimeout(timer));
      return;
    }
    const document = documents.get(path);
    if (document === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(document(`https://${CIMD_HOST}:${port}${path}`)));
  });
  server.on('clientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  return {
    port,
    ca: pems.cert,
    documents,
    get requests() {
      return state.requests;
    },
    url: (path) => `https://${CIMD_HOST}:${port}${path}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Test name resolution: `cimd.test` is the local server; the other names exercise the SSRF guard. */
export async function testResolve(hostname: string): Promise<string[]> {
  // As a real resolver: `cimd.test.` is `cimd.test` written fully qualified.
  switch (hostname.replace(/\.$/, '')) {
    case CIMD_HOST:
      return ['127.0.0.1'];
    case 'metadata.test':
      return ['169.254.169.254'];
    case 'mixed.test':
      return ['93.184.216.34', '10.0.0.5'];
    case 'v6-metadata.test':
      return ['fd00:ec2::254'];
    default:
      throw new Error(`test resolver: no address for ${hostname}`);
  }
}

/** The narrow loopback exception: only the test host, only on 127.0.0.1. */
export const allowTestHost = (address: string, hostname: string): boolean => hostname.replace(/\.$/, '') === CIMD_HOST && address === '127.0.0.1';
