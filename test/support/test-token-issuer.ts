import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

/**
 * A JWT issuer on a loopback port that publishes OpenID Connect discovery and a JWKS, and signs whatever a test asks
 * for: an enterprise IdP minting ID-JAGs, a workload platform minting workload tokens. Tests tamper with single
 * fields (`header`, `claims`, `key`) to prove each check.
 */
export interface TestTokenIssuer {
  issuer: string;
  /** Signs `claims` (defaults: `iss`, `iat`, `exp` in 5 min, a fresh `jti`) with the published key unless `key` is given. */
  sign(claims: JWTPayload, options?: { header?: Record<string, unknown>; key?: CryptoKey | Uint8Array; alg?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startTestTokenIssuer(options: { typ?: string; now?: () => number } = {}): Promise<TestTokenIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: 'issuer-key-1', alg: 'ES256', use: 'sig' };
  const server: Server = createServer((request, response) => {
    const documents: Record<string, unknown> = {
      '/.well-known/openid-configuration': { issuer, jwks_uri: `${issuer}/jwks` },
      '/jwks': { keys: [publicJwk] },
    };
    const body = documents[request.url ?? ''];
    if (body === undefined) response.writeHead(404).end();
    else response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const now = options.now ?? (() => Date.now());
  return {
    issuer,
    async sign(claims, signOptions = {}) {
      const seconds = Math.floor(now() / 1000);
      const alg = signOptions.alg ?? 'ES256';
      return new SignJWT({ iss: issuer, iat: seconds, exp: seconds + 300, jti: randomUUID(), ...claims })
        .setProtectedHeader({ alg, kid: 'issuer-key-1', ...(options.typ === undefined ? {} : { typ: options.typ }), ...signOptions.header })
        .sign(signOptions.key ?? privateKey);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A JWT with `alg: none` (unsigned), hand-built: no library signs one. */
export function unsignedJwt(header: Record<string, unknown>, claims: JWTPayload): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ ...header, alg: 'none' })}.${encode(claims)}.`;
}
