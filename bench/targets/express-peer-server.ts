import type { AddressInfo } from 'node:net';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { ProxyRoute } from './target.ts';

/**
 * The Express peer (child process): the proxy a server author writes in an afternoon — Express, the MCP SDK v1's
 * `requireBearerAuth` with a verifier that checks the JWT (signature, `typ`, issuer, audience, expiry), and one
 * `http-proxy-middleware` per backend, all with their defaults.
 */
const routes = JSON.parse(process.env.BENCH_ROUTES ?? '[]') as ProxyRoute[];
const jwks = createLocalJWKSet(JSON.parse(process.env.BENCH_JWKS ?? '{"keys":[]}') as JSONWebKeySet);
const issuer = process.env.BENCH_ISSUER ?? '';

const app = express();
const server = app.listen(0, '127.0.0.1', () => {
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // The token's audience is the URL of the route it was issued for, as the resource indicator (RFC 8707) makes it.
  const audiences = routes.map((route) => `${origin}${route.prefix.replace(/\/$/, '')}`);
  const verifier = {
    async verifyAccessToken(token: string): Promise<AuthInfo> {
      const { payload } = await jwtVerify(token, jwks, { issuer, audience: audiences, typ: 'at+jwt' });
      return {
        token,
        clientId: String(payload.client_id),
        scopes: String(payload.scope ?? '').split(' '),
        expiresAt: payload.exp,
      };
    },
  };
  app.use(requireBearerAuth({ verifier, requiredScopes: ['mcp:tools'] }));
  for (const route of routes) {
    const upstream = new URL(route.upstream);
    app.use(
      createProxyMiddleware({
        target: upstream.origin,
        pathFilter: (path) => path.startsWith(route.prefix),
        pathRewrite: (path) => upstream.pathname + path.slice(route.prefix.length),
      }),
    );
  }
  process.stdout.write(`${JSON.stringify({ origin })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
