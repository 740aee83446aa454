import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { UpstreamClient, UpstreamTokens } from '../../../src/upstream/types.ts';

/**
 * A stand-in upstream token endpoint over real HTTP, so replicas in other processes hit one counter: it answers
 * `refresh_token` and Entra on-behalf-of (`jwt-bearer`) grants after a delay long enough for every replica to race.
 */
export interface TokenEndpointStandIn {
  url: string;
  counts: { refresh: number; exchange: number };
  close(): Promise<void>;
}

export async function startTokenEndpoint(options: { delayMs: number }): Promise<TokenEndpointStandIn> {
  const counts = { refresh: 0, exchange: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const grant = params.get('grant_type');
      if (grant === 'refresh_token') counts.refresh += 1;
      else if (grant === 'urn:ietf:params:oauth:grant-type:jwt-bearer') counts.exchange += 1;
      setTimeout(() => {
        const body =
          grant === 'refresh_token'
            ? { access_token: `upstream-at-${randomUUID()}`, refresh_token: `upstream-rt-${randomUUID()}`, expires_in: 3600, token_type: 'Bearer' }
            : { access_token: `graph-at-${randomUUID()}`, expires_in: 3600, token_type: 'Bearer', scope: params.get('scope') };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      }, options.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    counts,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A minimal UpstreamClient that talks to the stand-in (the real one needs discovery and client authentication). */
export function httpUpstreamClient(tokenUrl: string): UpstreamClient {
  async function grant(params: Record<string, string>): Promise<UpstreamTokens> {
    const response = await fetch(tokenUrl, { method: 'POST', body: new URLSearchParams(params) });
    const body = (await response.json()) as { access_token: string; refresh_token?: string; expires_in: number; scope?: string };
    const tokens: UpstreamTokens = { accessToken: body.access_token, expiresAt: Date.now() + body.expires_in * 1000 };
    if (body.refresh_token) tokens.refreshToken = body.refresh_token;
    if (body.scope) tokens.scope = body.scope;
    return tokens;
  }
  const unused = async (): Promise<never> => {
    throw new Error('not used by the broker');
  };
  return {
    beginSignIn: unused,
    completeSignIn: unused,
    checkHealth: async () => undefined,
    refresh: (refreshToken) => grant({ grant_type: 'refresh_token', refresh_token: refreshToken }),
    exchangeForDownstream: (request) =>
      grant({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: request.subjectToken,
        requested_token_use: 'on_behalf_of',
        scope: request.scopes.join(' '),
      }),
  };
}
