import type { ProtectedResource } from './protected-resources.ts';

/**
 * What oidc-provider needs to issue an access token for one of our routes (its `getResourceServerInfo`): the route's
 * scopes, `aud` = the route's URL, our lifetime, a JWT signed with the keyring's algorithm. One definition for the
 * provider's own grants and ours (grants/issue-assertion-grant.ts).
 */
export interface ResourceServerInfo {
  scope: string;
  audience: string;
  accessTokenTTL: number;
  accessTokenFormat: 'jwt';
  jwt: { sign: { alg: string } };
}

export function resourceServerInfo(entry: ProtectedResource, options: { accessTokenTtlSeconds: number; signingAlg: string }): ResourceServerInfo {
  return {
    scope: Object.keys(entry.scopes).join(' '),
    audience: entry.resource,
    accessTokenTTL: options.accessTokenTtlSeconds,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: options.signingAlg } },
  };
}
