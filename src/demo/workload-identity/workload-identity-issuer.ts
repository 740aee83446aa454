import { rename, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, type JSONWebKeySet, type JWK } from 'jose';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../../runtime/clock.ts';
import { cryptoRandom, type Random } from '../../runtime/random.ts';

/**
 * DEVELOPMENT ONLY — a local stand-in for a Kubernetes service-account issuer (the AKS OIDC issuer). It publishes an
 * OIDC discovery document and a JWKS, and mints short-lived service-account JWTs for the federated-credential audience,
 * so the secretless client-authentication path (federated identity credential: issuer + subject + audience) runs on one
 * machine exactly as in a cluster: on `POST {issuer}/token` for loopback callers, or projected into a file it rotates
 * like the kubelet does. It runs on its own port, or mounted under a path of another local server (the demo IdP's).
 */
export const DEFAULT_WORKLOAD_SUBJECT = 'system:serviceaccount:gatehouse:gatehouse';
export const FEDERATED_CREDENTIAL_AUDIENCE = 'api://AzureADTokenExchange';

export interface WorkloadIdentityOptions {
  subject?: string;
  /** Audiences a token may be minted for; the first is the default. */
  audiences?: string[];
  /** Kubernetes projects 1 h tokens by default; tests use shorter ones. */
  tokenTtlSeconds?: number;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
}

export interface ProjectedToken {
  /** Writes a new token now (what the timer does at 80 % of the lifetime). */
  rotate(): Promise<void>;
  /** Stops rotating (the file stays). */
  stop(): void;
}

export interface WorkloadIdentity {
  issuer: string;
  jwksUri: string;
  subject: string;
  publicJwks: JSONWebKeySet;
  /** A token for `audience`; `subject` overrides the service account (tests of a credential that must not match). */
  mint(options?: { audience?: string; subject?: string }): Promise<string>;
  /** Writes a token to `path` now and rewrites it at 80 % of its lifetime, atomically (write, then rename). */
  projectToFile(path: string, options?: { rotateEveryMs?: number }): Promise<ProjectedToken>;
  /** Answers a request under the issuer's path; false if the path is not the issuer's. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Stops every projected-token rotation. */
  stop(): void;
}

export interface WorkloadIdentityIssuer extends WorkloadIdentity {
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readJsonBody(req: IncomingMessage, limit = 4096): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > limit) throw new Error('body too large');
  }
  if (!text.trim()) return {};
  const parsed: unknown = JSON.parse(text);
  return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
}

/** The issuer itself, for `issuer` (an http(s) URL whose path, if any, is where it is mounted). */
export async function createWorkloadIdentity(issuer: string, options: WorkloadIdentityOptions = {}): Promise<WorkloadIdentity> {
  const {
    subject = DEFAULT_WORKLOAD_SUBJECT,
    audiences = [FEDERATED_CREDENTIAL_AUDIENCE],
    tokenTtlSeconds = 3600,
    clock = systemClock,
    random = cryptoRandom,
    logger,
  } = options;
  const base = issuer.replace(/\/+$/, '');
  const basePath = new URL(base).pathname.replace(/\/+$/, '');
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk: JWK = await exportJWK(publicKey);
  publicJwk.kid = await calculateJwkThumbprint(publicJwk);
  publicJwk.alg = 'ES256';
  publicJwk.use = 'sig';
  const timers = new Set<NodeJS.Timeout>();

  async function mint(mintOptions: { audience?: string; subject?: string } = {}): Promise<string> {
    const audience = mintOptions.audience ?? audiences[0] ?? FEDERATED_CREDENTIAL_AUDIENCE;
    const now = Math.floor(clock.now() / 1000);
    return new SignJWT({ 'kubernetes.io': { namespace: 'gatehouse', serviceaccount: { name: 'gatehouse' } } })
      .setProtectedHeader({ alg: 'ES256', kid: publicJwk.kid as string, typ: 'JWT' })
      .setIssuer(base)
      .setSubject(mintOptions.subject ?? subject)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + tokenTtlSeconds)
      .setJti(random.token(16))
      .sign(privateKey);
  }

  function mintOnRequest(req: IncomingMessage, res: ServerResponse): void {
    // Only processes on this machine may obtain a workload identity, as only pods may read their projected token.
    if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) return sendJson(res, 403, { error: 'access_denied' });
    readJsonBody(req)
      .then(async (body) => {
        const audience = typeof body.audience === 'string' ? body.audience : audiences[0];
        if (!audience || !audiences.includes(audience)) return sendJson(res, 400, { error: 'invalid_target' });
        const token = await mint({ audience });
        return sendJson(res, 200, { token, expires_at: Math.floor(clock.now() / 1000) + tokenTtlSeconds });
      })
      .catch(() => sendJson(res, 400, { error: 'invalid_request' }));
  }

  return {
    issuer: base,
    jwksUri: `${base}/openid/v1/jwks`,
    subject,
    publicJwks: { keys: [publicJwk] },
    mint,
    handle(req, res) {
      const path = new URL(req.url ?? '/', 'http://local').pathname;
      if (basePath && path !== basePath && !path.startsWith(`${basePath}/`)) return false;
      const route = path.slice(basePath.length);
      if (req.method === 'GET' && route === '/.well-known/openid-configuration') {
        sendJson(res, 200, {
          issuer: base,
          jwks_uri: `${base}/openid/v1/jwks`,
          response_types_supported: ['id_token'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
        });
      } else if (req.method === 'GET' && route === '/openid/v1/jwks') {
        sendJson(res, 200, { keys: [publicJwk] });
      } else if (req.method === 'POST' && route === '/token') {
        mintOnRequest(req, res);
      } else {
        sendJson(res, 404, { error: 'not_found' });
      }
      return true;
    },
    async projectToFile(path, projectOptions = {}) {
      const write = async () => {
        const temporary = `${path}.${random.token(6)}.tmp`;
        await writeFile(temporary, await mint(), { mode: 0o600 });
        await rename(temporary, path);
      };
      await write();
      const timer = setInterval(() => {
        write().catch((error: unknown) => logger?.error({ err: error }, 'could not rotate the projected token'));
      }, projectOptions.rotateEveryMs ?? tokenTtlSeconds * 800);
      timer.unref();
      timers.add(timer);
      return {
        rotate: write,
        stop() {
          clearInterval(timer);
          timers.delete(timer);
        },
      };
    },
    stop() {
      for (const timer of timers) clearInterval(timer);
      timers.clear();
    },
  };
}

/** The issuer on its own loopback port (its issuer URL is that origin). */
export async function startWorkloadIdentityIssuer(
  options: WorkloadIdentityOptions & { port?: number; host?: string } = {},
): Promise<WorkloadIdentityIssuer> {
  const host = options.host ?? '127.0.0.1';
  let identity: WorkloadIdentity | undefined;
  const server = createServer((req, res) => {
    if (!identity?.handle(req, res)) sendJson(res, 404, { error: 'not_found' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  identity = await createWorkloadIdentity(`http://${host.includes(':') ? `[${host}]` : host}:${port}`, options);
  options.logger?.warn({ issuer: identity.issuer }, 'DEVELOPMENT ONLY: local workload-identity issuer started');
  const started = identity;
  return {
    ...started,
    close() {
      started.stop();
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
