import { createHash, createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Logger } from 'pino';
import type { CallerIdentity } from './caller-identity.ts';

/**
 * Where the server gets a Graph token for the caller.
 *  - `broker`: RFC 8693 token exchange at the gateway's `/token`, presenting the identity assertion it received as
 *    the subject token. The backend holds only its own client credential; the user's upstream tokens stay sealed in
 *    the gateway, and the gateway decides which audiences this backend may obtain.
 *  - `obo`: the gateway already forwarded a Graph token instead of an assertion (route `identity.mode: obo`); it is
 *    used as is.
 * @see RFC 8693 §2.1
 */
export class TokenSourceError extends Error {
  readonly reauthorize: boolean;
  constructor(message: string, reauthorize: boolean) {
    super(message);
    this.name = 'TokenSourceError';
    this.reauthorize = reauthorize;
  }
}

export interface BrokerClientOptions {
  tokenUrl: string;
  clientId: string;
  /** Sent with `clientSecretMethod` (Gatehouse registers secret clients as `client_secret_basic`). */
  clientSecret?: string;
  clientSecretMethod?: 'client_secret_basic' | 'client_secret_post';
  /** PEM (PKCS#8) or a KeyObject; signs a `private_key_jwt` client assertion. */
  privateKey?: string | KeyObject;
  privateKeyAlg?: 'ES256' | 'RS256' | 'EdDSA';
  /** Downstream audience, e.g. `https://graph.microsoft.com`. */
  resource: string;
  scope: string;
}

export interface GraphTokenSource {
  tokenFor(caller: CallerIdentity): Promise<string>;
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

export function createOboTokenSource(): GraphTokenSource {
  return { tokenFor: async (caller) => caller.credential };
}

export function createBrokerTokenSource(options: BrokerClientOptions & { logger: Logger; fetch?: typeof globalThis.fetch; timeoutMs?: number }): GraphTokenSource {
  const { tokenUrl, clientId, clientSecret, resource, scope, logger, timeoutMs = 10_000 } = options;
  const fetch = options.fetch ?? globalThis.fetch;
  const privateKey = typeof options.privateKey === 'string' ? createPrivateKey(options.privateKey) : options.privateKey;
  if (!clientSecret && !privateKey) throw new Error('broker token source needs clientSecret or privateKey');
  // Per assertion (jti), so one assertion's lifetime bounds reuse; the gateway keeps the real per-user cache.
  const cache = new Map<string, { token: string; expiresAt: number }>();

  /** @see RFC 6749 §2.3.1 — Basic credentials are form-urlencoded before base64. */
  const basic = (): string =>
    `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret as string)}`).toString('base64')}`;

  async function clientAuthentication(): Promise<{ params: Record<string, string>; headers: Record<string, string> }> {
    if (!privateKey) {
      return options.clientSecretMethod === 'client_secret_post'
        ? { params: { client_id: clientId, client_secret: clientSecret as string }, headers: {} }
        : { params: {}, headers: { authorization: basic() } };
    }
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: options.privateKeyAlg ?? 'ES256' })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(tokenUrl)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(privateKey);
    return {
      params: { client_id: clientId, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion },
      headers: {},
    };
  }

  return {
    async tokenFor(caller) {
      const cacheKey = createHash('sha256').update(caller.credential).digest('base64url');
      const hit = cache.get(cacheKey);
      if (hit && hit.expiresAt > Date.now() + 30_000) return hit.token;
      let response: Response;
      const auth = await clientAuthentication();
      try {
        response = await fetch(tokenUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...auth.headers },
          body: new URLSearchParams({
            grant_type: TOKEN_EXCHANGE,
            subject_token: caller.credential,
            subject_token_type: JWT_TYPE,
            resource,
            scope,
            ...auth.params,
          }),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        logger.warn({ reason: (error as Error).name }, 'gateway token endpoint unreachable');
        throw new TokenSourceError('The gateway token service could not be reached; try again later.', false);
      }
      const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
      if (!response.ok || typeof body.access_token !== 'string') {
        const error = typeof body.error === 'string' && /^[a-z_]{1,64}$/.test(body.error) ? body.error : `http_${response.status}`;
        logger.warn({ status: response.status, oauthError: error }, 'token exchange at the gateway failed');
        if (error === 'interaction_required') {
          throw new TokenSourceError('Microsoft Graph needs you to sign in again (or consent); re-authorize the MCP client with the gateway.', true);
        }
        // The gateway says only that it cannot now: its store or the identity provider may be the one down.
        if (error === 'temporarily_unavailable') throw new TokenSourceError('The gateway cannot get a Microsoft Graph token right now; try again later.', false);
        throw new TokenSourceError(`The gateway refused a Microsoft Graph token (${error}).`, false);
      }
      const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : 300;
      if (cache.size > 1_000) cache.clear();
      cache.set(cacheKey, { token: body.access_token, expiresAt: Date.now() + expiresIn * 1000 });
      return body.access_token;
    },
  };
}
