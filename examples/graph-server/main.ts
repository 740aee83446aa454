import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { startGraphServer } from './graph-server.ts';

/**
 * Runs the sample Graph MCP server from environment variables:
 *
 *   GATEWAY_ISSUER=https://gatehouse.example.com  GRAPH_SERVER_AUDIENCE=https://gatehouse.example.com/mcp
 *   GRAPH_SERVER_HTTP_AUDIENCE=https://gatehouse.example.com/graph   (only with a `type: http` route to …/api)
 *   TOKEN_SOURCE=broker BROKER_CLIENT_ID=graph-backend BROKER_CLIENT_SECRET=… (or BROKER_PRIVATE_KEY_FILE=key.pem)
 *   node examples/graph-server/main.ts
 */
const urlList = z.string().transform((value) => value.split(',').map((entry) => entry.trim()).filter(Boolean));
const envSchema = z
  .object({
    PORT: z.coerce.number().int().min(0).max(65_535).default(3001),
    HOST: z.string().default('127.0.0.1'),
    GATEWAY_ISSUER: z.url(),
    // Comma-separated: one resource URL per gateway MCP route that forwards here (accepted on the MCP endpoints only).
    GRAPH_SERVER_AUDIENCE: urlList.pipe(z.array(z.url()).min(1)),
    // Comma-separated: the plain HTTP routes that forward to `/api` (accepted on the REST endpoints only).
    GRAPH_SERVER_HTTP_AUDIENCE: urlList.pipe(z.array(z.url())).optional(),
    GATEWAY_JWKS_URL: z.url().optional(),
    GRAPH_BASE_URL: z.url().default('https://graph.microsoft.com'),
    TOKEN_SOURCE: z.enum(['broker', 'obo']).default('broker'),
    BROKER_TOKEN_URL: z.url().optional(),
    BROKER_CLIENT_ID: z.string().optional(),
    BROKER_CLIENT_SECRET: z.string().optional(),
    BROKER_PRIVATE_KEY_FILE: z.string().optional(),
    GRAPH_RESOURCE: z.string().default('https://graph.microsoft.com'),
    GRAPH_SCOPE: z.string().default('https://graph.microsoft.com/User.Read'),
  });

const parsed = envSchema
  // The broker source authenticates at the gateway's /token: one way or the other, decided here, not by a stack trace.
  .refine((value) => value.TOKEN_SOURCE !== 'broker' || value.BROKER_CLIENT_SECRET !== undefined || value.BROKER_PRIVATE_KEY_FILE !== undefined, {
    path: ['BROKER_CLIENT_SECRET'],
    message: 'TOKEN_SOURCE=broker needs BROKER_CLIENT_SECRET or BROKER_PRIVATE_KEY_FILE',
  })
  .safeParse(process.env);
if (!parsed.success) {
  for (const issue of parsed.error.issues) process.stderr.write(`graph-server: ${issue.path.join('.')}: ${issue.message}\n`);
  process.exit(2);
}
const env = parsed.data;
let brokerKey: string | undefined;
try {
  brokerKey = env.BROKER_PRIVATE_KEY_FILE === undefined ? undefined : readFileSync(env.BROKER_PRIVATE_KEY_FILE, 'utf8');
} catch (error) {
  process.stderr.write(`graph-server: BROKER_PRIVATE_KEY_FILE: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}\n`);
  process.exit(2);
}

const issuer = env.GATEWAY_ISSUER.replace(/\/+$/, '');
const running = await startGraphServer({
  port: env.PORT,
  host: env.HOST,
  gatewayIssuer: issuer,
  audience: env.GRAPH_SERVER_AUDIENCE,
  ...(env.GRAPH_SERVER_HTTP_AUDIENCE ? { httpAudience: env.GRAPH_SERVER_HTTP_AUDIENCE } : {}),
  jwksUrl: env.GATEWAY_JWKS_URL ?? `${issuer}/jwks`,
  graphBaseUrl: env.GRAPH_BASE_URL,
  tokenSource: env.TOKEN_SOURCE,
  ...(env.TOKEN_SOURCE === 'broker'
    ? {
        broker: {
          tokenUrl: env.BROKER_TOKEN_URL ?? `${issuer}/token`,
          clientId: env.BROKER_CLIENT_ID ?? 'graph-server',
          ...(env.BROKER_CLIENT_SECRET ? { clientSecret: env.BROKER_CLIENT_SECRET } : {}),
          ...(brokerKey !== undefined ? { privateKey: brokerKey } : {}),
          resource: env.GRAPH_RESOURCE,
          scope: env.GRAPH_SCOPE,
        },
      }
    : {}),
});
process.stdout.write(`graph-server listening on ${running.url}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void running.close().then(() => process.exit(0)));
}
