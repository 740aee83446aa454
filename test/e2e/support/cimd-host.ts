import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { generate } from 'selfsigned';
import type { AssembleOptions } from '../../../src/app/assemble-parts.ts';

/**
 * The web server an MCP client's Client ID Metadata Document lives on, for the end-to-end tests: HTTPS with a
 * self-signed test certificate for `client.e2e.test`. The gateway is told to trust that certificate
 * (`authorization.clientMetadataDocuments.trustedCaFile`) and to resolve that one host to 127.0.0.1 with the loopback
 * exception granted for that host only — every other loopback target stays refused by the SSRF guard.
 */
export const CIMD_HOST = 'client.e2e.test';

export interface CimdHost {
  /** The client id: the URL of the document. */
  clientId: string;
  /** PEM file of the test certificate, for `trustedCaFile`. */
  caFile: string;
  /** Gateway assembly options that resolve and allow only this host. */
  assemble: AssembleOptions;
  /** How many times the gateway fetched the document. */
  fetches: number;
  close(): Promise<void>;
}

export async function startCimdHost(options: { caFile: string; document: (clientId: string) => Record<string, unknown> }): Promise<CimdHost> {
  const pems = await generate([{ name: 'commonName', value: CIMD_HOST }], {
    keySize: 2048,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: CIMD_HOST }] },
    ],
  });
  await writeFile(options.caFile, pems.cert);
  const state = { fetches: 0, clientId: '' };
  const server: Server = createServer({ key: pems.private, cert: pems.cert }, (request, response) => {
    if (request.url !== '/mcp-client.json') {
      response.writeHead(404).end();
      return;
    }
    state.fetches += 1;
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(options.document(state.clientId)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.clientId = `https://${CIMD_HOST}:${port}/mcp-client.json`;
  return {
    clientId: state.clientId,
    caFile: options.caFile,
    assemble: {
      clientMetadataFetch: {
        resolve: async (hostname) => {
          if (hostname !== CIMD_HOST) throw new Error(`the e2e resolver knows only ${CIMD_HOST}`);
          return ['127.0.0.1'];
        },
        allowAddress: (address, hostname) => hostname === CIMD_HOST && address === '127.0.0.1',
      },
    },
    get fetches() {
      return state.fetches;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
