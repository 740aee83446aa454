import type { JWK } from 'jose';
import { errors, interactionPolicy, type Adapter, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { hasMfa, requestsStepUp } from './step-up.ts';
import { LOCAL_TENANT_ID, type LocalUser } from './users.ts';
import { TOKEN_EXCHANGE_GRANT } from '../../protocol/oauth-urns.ts';

/**
 * DEVELOPMENT ONLY — oidc-provider settings that make the local IdP behave like Entra where the gateway depends on
 * it: an ID token with `name`, `email`, `oid`, `tid`, `groups`; a JWT access token for the gateway's own API
 * (`aud` = the gateway audience, `scp`) even though the gateway never sends `resource` (Entra rejects it); refresh
 * tokens; PKCE S256 required; and client authentication only by `private_key_jwt` (the federated bridge rides on it).
 */
export interface ProviderSettings {
  privateJwk: JWK;
  gatewayClientId: string;
  gatewayRedirectUris: string[];
  gatewayPostLogoutRedirectUris: string[];
  gatewayAudience: string;
  /** Scope that asks for a gateway-audience access token, e.g. `api://gatehouse/access_as_user`. */
  gatewayScope: string;
  /** Public keys the gateway client may sign its own client assertions with, plus the federated bridge's key. */
  gatewayClientJwks: JWK[];
  extraGrantTypes: string[];
  /** MCP clients users sign in to with this IdP (single sign-on), which may then ask it for ID-JAGs. */
  ssoClients: SsoClient[];
  findUser: (id: string) => LocalUser | undefined;
  cookieKeys: string[];
  adapter: (name: string) => Adapter;
}

/** A confidential MCP client of the local IdP (client_secret_post), loopback redirects on any port (RFC 8252 §7.3). */
export interface SsoClient {
  clientId: string;
  clientSecret: string;
  name?: string | undefined;
}

export function providerConfiguration(settings: ProviderSettings): Configuration {
  const { gatewayAudience, gatewayScope } = settings;
  return {
    adapter: settings.adapter,
    clients: [
      {
        client_id: settings.gatewayClientId,
        client_name: 'Gatehouse',
        redirect_uris: settings.gatewayRedirectUris,
        post_logout_redirect_uris: settings.gatewayPostLogoutRedirectUris,
        response_types: ['code'],
        grant_types: ['authorization_code', 'refresh_token', ...settings.extraGrantTypes],
        token_endpoint_auth_method: 'private_key_jwt',
        id_token_signed_response_alg: 'ES256',
        jwks: { keys: settings.gatewayClientJwks },
      },
      ...settings.ssoClients.map((client) => ({
        client_id: client.clientId,
        client_secret: client.clientSecret,
        client_name: client.name ?? client.clientId,
        application_type: 'native',
        redirect_uris: ['http://127.0.0.1/callback'],
        response_types: ['code'],
        grant_types: ['authorization_code', TOKEN_EXCHANGE_GRANT],
        // As the extension's examples (and the MCP SDK) send them: in the body (RFC 6749 §2.3.1).
        token_endpoint_auth_method: 'client_secret_post',
        id_token_signed_response_alg: 'ES256',
      })),
    ],
    jwks: { keys: [settings.privateJwk] },
    cookies: { keys: settings.cookieKeys },
    routes: {
      authorization: '/authorize',
      token: '/token',
      jwks: '/jwks',
      userinfo: '/userinfo',
      revocation: '/revoke',
      end_session: '/logout',
    },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'oid', 'tid', 'groups'],
      email: ['email', 'email_verified'],
    },
    // Entra puts profile claims in the ID token; so does this stand-in (the gateway does not call userinfo).
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    // The gateway client only by `private_key_jwt` (its registration says so); SSO clients of the demo by secret.
    clientAuthMethods: ['private_key_jwt', 'client_secret_post'],
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      // Like Entra's `end_session_endpoint`: the gateway's sign-out ends the IdP session too, so the next visit asks.
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Entra derives the audience from the scope (`api://gatehouse/access_as_user`); do the same when none is sent.
        defaultResource: (ctx: KoaContextWithOIDC) => {
          const scope = ctx.oidc.params?.scope;
          return typeof scope === 'string' && scope.split(' ').includes(gatewayScope) ? gatewayAudience : undefined;
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: KoaContextWithOIDC, resource: string) => {
          if (resource !== gatewayAudience) throw new errors.InvalidTarget();
          return {
            scope: gatewayScope,
            audience: gatewayAudience,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    // Entra's claims challenge does not fit oidc-provider's `claims` parameter (it names `access_token`, not `id_token`
    // or `userinfo`), so it is taken as a plain parameter and read by the sign-in policy and page.
    extraParams: ['claims'],
    extraTokenClaims: (ctx: KoaContextWithOIDC, token: { kind?: string; accountId?: string; scope?: string }) => {
      if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
      const user = settings.findUser(token.accountId);
      if (!user) return undefined;
      // Entra access-token claims the gateway and the broker read.
      const scp = (token.scope ?? '')
        .split(' ')
        .filter((scope) => scope.startsWith(`${gatewayAudience}/`))
        .map((scope) => scope.slice(gatewayAudience.length + 1))
        .join(' ');
      // Entra's `amr` (authentication methods): `mfa` once the user did the second factor, carried on by refreshes.
      const entities = ctx.oidc.entities as { AuthorizationCode?: { amr?: string[] }; RefreshToken?: { amr?: string[] } };
      const amr = entities.AuthorizationCode?.amr ?? entities.RefreshToken?.amr;
      return { oid: user.id, tid: LOCAL_TENANT_ID, name: user.name, email: user.email, scp, ver: '2.0', ...(amr ? { amr } : {}) };
    },
    findAccount: (_ctx: KoaContextWithOIDC, id: string) => {
      const user = settings.findUser(id);
      if (!user) return undefined;
      return {
        accountId: user.id,
        claims: () => ({
          sub: user.id,
          oid: user.id,
          tid: LOCAL_TENANT_ID,
          name: user.name,
          given_name: user.givenName,
          family_name: user.surname,
          preferred_username: user.email,
          email: user.email,
          email_verified: true,
          groups: user.groups,
        }),
      };
    },
    interactions: { policy: signInPolicy(), url: (_ctx: KoaContextWithOIDC, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 86_400,
      Grant: 14 * 86_400,
      RefreshToken: 14 * 86_400,
    },
    rotateRefreshToken: true,
    renderError: (ctx: KoaContextWithOIDC, out: Record<string, unknown>) => {
      ctx.type = 'html';
      const text = Object.entries(out)
        .map(([key, value]) => `${key}: ${String(value)}`)
        .join('\n')
        .replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
      ctx.body = `<!doctype html><html lang="en"><title>Sign-in error</title><pre>${text}</pre></html>`;
    },
  };
}

/** oidc-provider's default prompts, plus: a `claims` step-up request signs the user in again unless MFA was done. */
function signInPolicy() {
  const policy = interactionPolicy.base();
  policy.get('login')?.checks.add(
    new interactionPolicy.Check('step_up', 'The claims request asks for multi-factor authentication', (ctx: KoaContextWithOIDC) => {
      const session = ctx.oidc.session as { amr?: unknown } | undefined;
      return requestsStepUp(ctx.oidc.params?.claims) && !hasMfa(session?.amr);
    }),
  );
  return policy;
}
