import type Provider from 'oidc-provider';
import { constantTimeEqual, verifyClientSecret } from '../keys/hashing.ts';
import { isHashedClientSecret } from './adapter-hooks.ts';
import { loopbackWithoutPort } from './redirect-uri-policy.ts';

/**
 * Two changes to oidc-provider's Client model:
 *
 * - Client secrets are kept only as scrypt hashes (configured and dynamically registered clients alike), so the
 *   secret comparison verifies against the hash. Symmetric uses of the secret (`client_secret_jwt`, HS256 ID tokens)
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
    return isHashedClientSecret(stored) ? verifyClientSecret(actual, stored) : constantTimeEqual(stored, actual);
  };

  prototype.redirectUriAllowed = function redirectUriAllowed(value: string): boolean {
    if (exactRedirectUriAllowed.call(this, value)) return true;
    const requested = loopbackWithoutPort(value);
    return requested !== undefined && this.redirectUris.some((uri) => loopbackWithoutPort(uri) === requested);
  };
}
