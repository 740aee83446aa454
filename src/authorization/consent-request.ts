import { OIDC_SCOPES } from '../protocol/oidc-scopes.ts';
import type { Client, InteractionDetails } from 'oidc-provider';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { ProtectedResource, ProtectedResources } from './protected-resources.ts';

/**
 * What an authorization request asks the user to approve, read from the oidc-provider interaction: one client, one
 * exact redirect URI (already validated by the provider before it created the interaction), one protected resource,
 * and the scopes of that resource (plus OpenID scopes, which need no separate consent line).
 */
export interface ConsentSubject {
  clientId: string;
  redirectUri: string;
  resource: ProtectedResource;
  /**
   * The resource indicator exactly as the request named it (`…/mcp/`, upper-case host): oidc-provider checks the
   * grant under this string, so the grant must record the approval under it too, or the provider asks for consent
   * again and the browser loops between `/authorize` and `/interaction`. Tokens still carry the canonical `aud`.
   */
  resourceIndicator: string;
  /** Scopes of the resource, in request order, each known to the resource. */
  scopes: string[];
  /** `openid`, `profile`, `email`, `offline_access` when requested. */
  oidcScopes: string[];
}


function single(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === 'string') return value[0];
  throw new ProtocolError(name === 'resource' ? 'invalid_target' : 'invalid_request', `exactly one ${name} is supported`);
}

export function consentSubjectFrom(details: InteractionDetails, client: Client, resources: ProtectedResources): ConsentSubject {
  const redirectUri = single(details.params.redirect_uri, 'redirect_uri') ?? client.redirectUris[0];
  if (redirectUri === undefined) throw new ProtocolError('invalid_request', 'the request has no redirect_uri');
  const resourceId = single(details.params.resource, 'resource') ?? resources.defaultResource?.resource;
  const resource = resourceId === undefined ? undefined : resources.find(resourceId);
  if (resource === undefined) throw new ProtocolError('invalid_target', 'resource is not a protected resource of this gateway');

  const requested = (single(details.params.scope, 'scope') ?? '').split(' ').filter((scope) => scope !== '');
  // Own keys only: `scope in` would take `toString` or `constructor` for a route scope (and the page would 500).
  const scopes = [...new Set(requested.filter((scope) => Object.hasOwn(resource.scopes, scope)))];
  const oidcScopes = [...new Set(requested.filter((scope) => OIDC_SCOPES.has(scope)))];
  return { clientId: client.clientId, redirectUri, resource, resourceIndicator: resourceId ?? resource.resource, scopes, oidcScopes };
}
