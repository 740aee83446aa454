import Provider from 'oidc-provider';
import { addressBudgetKey } from './address-policy.ts';
import { constantTimeEqual, isHashedClientSecret, SecretCheckBusyError, verifyClientSecret } from '../keys/hashing.ts';
import { loopbackWithoutPort } from './redirect-uri-policy.ts';

/**
 * Changes to oidc-provider's Client model:
 *
 * - Client secrets are kept only as hashes (scrypt for configured ones, which a person may have chosen; SHA-256 for
 *   the ones the server generated at registration), so the secret comparison verifies against the hash. Symmetric uses of the secret (`client_secret_jwt`, HS256 ID tokens)
 *   are disabled in the provider configuration for that reason.
 * - Loopback redirect URIs match on any port for every client, not only `application_type: native`: MCP clients
 *   register without `application_type` yet listen on an ephemeral port (RFC 8252 §7.3).
 */
export function installClientOverrides(provider: Provider): void {
  const prototype = provider.Client.prototype;
  const exactRedirectUriAllowed = prototype.redirectUriAllowed;

  prototype.compareClientSecret = async function compareClientSecret(actual: string): Promise<boolean> {
    const stored = this.clientSecret;
    if (typeof stored !== 'string' || typeof actual !== 'string') return false;
    if (!isHashedClientSecret(stored)) return constantTimeEqual(stored, actual);
    try {
      // The address Fastify resolved (trustProxy), handed to the provider as its only X-Forwarded-For
      // (presentAsPublicRequest): a flood of wrong secrets from one address waits in that address's places only.
      const ip = (Provider.ctx as { ip?: unknown } | undefined)?.ip;
      return await verifyClientSecret(actual, stored, typeof ip === 'string' && ip !== '' ? addressBudgetKey(ip) : '');
    } catch (error) {
      if (error instanceof SecretCheckBusyError) throw new SecretCheckBusy();
      throw error;
    }
  };

  // RFC 7592 §3: a client reading its registration gets its current metadata — and the stored client_secret is a
  // hash, useless to the client and not for anyone to see. The secret was shown once, in the registration response
  // (which carries the secret as generated); a read leaves it out.
  // A client registering without `token_endpoint_auth_method` is public here (the default is `none`: MCP clients
  // hold no secret), but oidc-provider decides whether to generate a secret before applying that default, so its
  // answer said `none` and carried a 512-bit secret no endpoint would ever accept. Such a client gets none.
  provider.use(async (ctx, next) => {
    await next();
    const route = (ctx.oidc as { route?: string } | undefined)?.route;
    if (route !== 'client' && route !== 'registration') return;
    const body = ctx.body as { client_secret?: unknown; client_secret_expires_at?: unknown; token_endpoint_auth_method?: unknown } | undefined;
    if (body === undefined || typeof body.client_secret !== 'string') return;
    if (body.token_endpoint_auth_method === 'none') {
      delete body.client_secret;
      delete body.client_secret_expires_at;
    } else if (route === 'client' && isHashedClientSecret(body.client_secret)) {
      delete body.client_secret;
    }
  });

  prototype.redirectUriAllowed = function redirectUriAllowed(value: string): boolean {
    if (exactRedirectUriAllowed.call(this, value)) return true;
    const requested = loopbackWithoutPort(value);
    return requested !== undefined && this.redirectUris.some((uri) => loopbackWithoutPort(uri) === requested);
  };
}

/**
 * Too many slow secret checks at once (hashing.ts), as oidc-provider renders an error: `expose`d, so the token,
 * revocation and introspection endpoints answer `503 temporarily_unavailable` (with Retry-After, installRetryAfter)
 * in their own format rather than a 500. The secret was not judged, so it is not `invalid_client`.
 */
class SecretCheckBusy extends Error {
  readonly error = 'temporarily_unavailable';
  readonly error_description = 'Too many client authentications are being checked; retry shortly.';
  readonly status = 503;
  readonly statusCode = 503;
  readonly expose = true;

  constructor() {
    super('temporarily_unavailable');
    this.name = 'SecretCheckBusy';
  }
}
