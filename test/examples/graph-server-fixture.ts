import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { pino, type Logger } from 'pino';

/**
 * Stand-ins around the sample Graph server: a "gateway" (JWKS for identity assertions + an RFC 8693 `/token`
 * endpoint) and a scriptable "Graph". Tokens are random per run, so a leak check can search for them.
 */
export interface Gateway {
  url: string;
  issuer: string;
  signAssertion(claims?: Record<string, unknown>, options?: { typ?: string; aud?: string; exp?: number; iss?: string; sub?: string; key?: CryptoKey }): Promise<string>;
  /** Every token the gateway issued, for leak checks. */
  issuedTokens: string[];
  tokenRequests: URLSearchParams[];
  /** `Authorization` header of each token request (client_secret_basic). */
  tokenRequestAuthorization: string[];
  /** Next `/token` answer overrides (status + body); undefined = issue a token. */
  nextTokenError: { status: number; body: Record<string, unknown> } | undefined;
  /** Signs Graph-like delegated tokens the demo directory API accepts. */
  idpIssuer: string;
  idpJwks: { keys: JWK[] };
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

export async function startGateway(audience: () => string): Promise<Gateway> {
  const assertionKeys = await generateKeyPair('ES256');
  const idpKeys = await generateKeyPair('ES256');
  const assertionJwk = { ...(await exportJWK(assertionKeys.publicKey)), kid: 'gw-1', alg: 'ES256', use: 'sig' };
  const idpJwk = { ...(await exportJWK(idpKeys.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
  const server = createServer();
  const url = await listen(server);
  const idpIssuer = `${url}/idp`;
  const gateway: Gateway = {
    url,
    issuer: url,
    issuedTokens: [],
    tokenRequests: [],
    tokenRequestAuthorization: [],
    nextTokenError: undefined,
    idpIssuer,
    idpJwks: { keys: [idpJwk] },
    async signAssertion(claims = {}, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      const jwt = await new SignJWT({ name: 'Alice Example', email: 'alice@example.test', tid: 'tenant-1', groups: ['staff'], scope: 'mcp:tools', client_id: 'test-client', gid: randomUUID(), ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'gw-1', typ: options.typ ?? 'gatehouse-id+jwt' })
        .setIssuer(options.iss ?? url)
        .setAudience(options.aud ?? audience())
        .setSubject(options.sub ?? 'tenant-1/alice-id')
        .setJti(randomUUID())
        .setIssuedAt(now)
        .setExpirationTime(options.exp ?? now + 120)
        .sign(options.key ?? assertionKeys.privateKey);
      gateway.issuedTokens.push(jwt);
      return jwt;
    },
    close: () => closeServer(server),
  };
  server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        if (req.url === '/jwks') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ keys: [assertionJwk] }));
          return;
        }
        if (req.url === '/token' && req.method === 'POST') {
          const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
          gateway.tokenRequests.push(params);
          gateway.tokenRequestAuthorization.push(req.headers.authorization ?? '');
          const failure = gateway.nextTokenError;
          if (failure) {
            gateway.nextTokenError = undefined;
            res.writeHead(failure.status, { 'content-type': 'application/json' });
            res.end(JSON.stringify(failure.body));
            return;
          }
          const accessToken = await new SignJWT({ scp: 'User.Read', oid: 'alice-id' })
            .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
            .setIssuer(idpIssuer)
            .setAudience('https://graph.microsoft.com')
            .setSubject('alice-pairwise')
            .setIssuedAt()
            .setExpirationTime('1h')
            .sign(idpKeys.privateKey);
          gateway.issuedTokens.push(accessToken);
          res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
          res.end(JSON.stringify({ access_token: accessToken, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600 }));
          return;
        }
        res.writeHead(404).end();
      })();
    });
  });
  return gateway;
}

/** A Graph that answers from a script: each entry is one response; when empty, a fixed profile. */
export async function startScriptedGraph(): Promise<{ url: string; script: Array<{ status: number; headers?: Record<string, string> }>; seenAuthorization: string[]; close(): Promise<void> }> {
  const script: Array<{ status: number; headers?: Record<string, string> }> = [];
  const seenAuthorization: string[] = [];
  const server = createServer((req, res) => {
    seenAuthorization.push(req.headers.authorization ?? '');
    const next = script.shift();
    if (next) {
      res.writeHead(next.status, { 'content-type': 'application/json', ...next.headers });
      res.end(JSON.stringify({ error: { code: 'TooManyRequests', message: `raw graph detail ${req.headers.authorization ?? ''}` } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'alice-id', displayName: 'Alice Example', mail: 'alice@example.test', userPrincipalName: 'alice@example.test' }));
  });
  const url = await listen(server);
  return { url, script, seenAuthorization, close: () => closeServer(server) };
}

export function capturingLogger(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, destination), text: () => lines.join('') };
}
