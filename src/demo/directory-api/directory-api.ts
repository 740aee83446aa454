import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { systemClock, type Clock } from '../../runtime/clock.ts';
import { graphError, graphUser, type DirectoryUser, type GraphErrorCode } from './graph-shapes.ts';

/**
 * DEVELOPMENT ONLY — a stand-in for Microsoft Graph's `/v1.0/me` and `/v1.0/users/{id}` for the local demo and the
 * tests. It answers only for a delegated token from the local identity provider with this API's audience and the
 * `User.Read` scope, in Graph's own response and error shapes, so the sample server cannot tell it from Graph.
 * It is never started in production mode.
 */
export interface DirectoryApiOptions {
  port: number;
  host?: string;
  /** The local identity provider's issuer: tokens from anyone else are refused. */
  issuer: string;
  /** The audience delegated tokens must carry (e.g. `https://graph.microsoft.com` in the demo). */
  audience: string;
  /** Defaults to `${issuer}/jwks`. */
  jwksUrl?: string;
  /** Verification keys instead of fetching `jwksUrl` (tests). */
  jwks?: JWTVerifyGetKey;
  users: DirectoryUser[];
  clock?: Clock;
}

export interface RunningDirectoryApi {
  url: string;
  close(): Promise<void>;
}

/** Reading other users needs a directory scope, as in Graph; `User.Read` only covers `/me`. */
const directoryScopes = ['User.ReadBasic.All', 'User.Read.All', 'Directory.Read.All'];

class GraphRequestError extends Error {
  readonly status: number;
  readonly code: GraphErrorCode;
  constructor(status: number, code: GraphErrorCode, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Entra puts delegated scopes in `scp` (space-separated, without the resource prefix); the local IdP may use `scope`. */
function delegatedScopes(payload: JWTPayload): string[] {
  const raw = typeof payload.scp === 'string' ? payload.scp : typeof payload.scope === 'string' ? payload.scope : '';
  return raw
    .split(' ')
    .filter(Boolean)
    .map((scope) => scope.slice(scope.lastIndexOf('/') + 1));
}

export async function startDirectoryApi(options: DirectoryApiOptions): Promise<RunningDirectoryApi> {
  const clock = options.clock ?? systemClock;
  const jwks = options.jwks ?? createRemoteJWKSet(new URL(options.jwksUrl ?? `${options.issuer.replace(/\/+$/, '')}/jwks`));
  const byId = new Map(options.users.map((user) => [user.id, user]));
  const byUpn = new Map(options.users.map((user) => [user.userPrincipalName.toLowerCase(), user]));

  async function authenticate(req: IncomingMessage): Promise<{ user: DirectoryUser; scopes: string[] }> {
    const match = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
    if (!match?.[1]) throw new GraphRequestError(401, 'InvalidAuthenticationToken', 'Access token is empty.');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(match[1], jwks, { issuer: options.issuer, audience: options.audience, currentDate: new Date(clock.now()) }));
    } catch (error) {
      const message =
        error instanceof joseErrors.JWTExpired
          ? 'Lifetime validation failed, the token is expired.'
          : error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'aud'
            ? 'Invalid audience.'
            : 'Access token validation failure. Invalid issuer or signature.';
      throw new GraphRequestError(401, 'InvalidAuthenticationToken', message);
    }
    const scopes = delegatedScopes(payload);
    // An app-only token (client credentials) has roles but no scp: /me means nothing without a user.
    if (!scopes.includes('User.Read')) {
      throw new GraphRequestError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    }
    const id = typeof payload.oid === 'string' ? payload.oid : payload.sub;
    const user = id === undefined ? undefined : byId.get(id);
    if (!user) throw new GraphRequestError(404, 'Request_ResourceNotFound', `Resource '${id ?? ''}' does not exist or one of its queried reference-property objects are not present.`);
    return { user, scopes };
  }

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://directory.invalid');
    if (req.method !== 'GET') throw new GraphRequestError(405, 'BadRequest', 'Only GET is supported by the demo directory API.');
    const usersPath = /^\/v1\.0\/users\/([^/]+)$/.exec(url.pathname);
    if (url.pathname !== '/v1.0/me' && !usersPath) {
      throw new GraphRequestError(400, 'BadRequest', `Resource not found for the segment '${url.pathname.split('/').pop() ?? ''}'.`);
    }
    const { user, scopes } = await authenticate(req);
    if (!usersPath) return send(res, 200, graphUser(user), requestId);
    const wanted = decodeURIComponent(usersPath[1] as string);
    const target = byId.get(wanted) ?? byUpn.get(wanted.toLowerCase());
    if (target !== user && !scopes.some((scope) => directoryScopes.includes(scope))) {
      throw new GraphRequestError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    }
    if (!target) throw new GraphRequestError(404, 'Request_ResourceNotFound', `Resource '${wanted}' does not exist or one of its queried reference-property objects are not present.`);
    return send(res, 200, graphUser(target), requestId);
  }

  const server = createServer((req, res) => {
    const requestId = randomUUID();
    handle(req, res, requestId).catch((error: unknown) => {
      const failure = error instanceof GraphRequestError ? error : new GraphRequestError(500, 'BadRequest', 'An unexpected error occurred.');
      const headers: Record<string, string> = failure.status === 401 ? { 'www-authenticate': 'Bearer realm="", authorization_uri="", client_id=""' } : {};
      send(res, failure.status, graphError(failure.code, failure.message, requestId, new Date(clock.now())), requestId, headers);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown, requestId: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8',
    'request-id': requestId,
    'client-request-id': requestId,
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(JSON.stringify(body));
}
