import { OIDC_SCOPES } from '../protocol/oidc-scopes.ts';
import { dpopNonceSecret } from '../keys/dpop-nonces.ts';
import type { Account, AdapterFactory, Client, ClientMetadata, Configuration, KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import type { Keyring } from '../keys/keyring.ts';
import { seconds } from '../runtime/clock.ts';
import { policyWithRedirectConsent } from './approved-redirects.ts';
import type { GuardedFetch } from './client-metadata-fetch.ts';
import { providerFetch } from './provider-fetch.ts';
import { decideClientIdUrl } from './client-metadata-policy.ts';
import type { ProtectedResources } from './protected-resources.ts';
import { DPOP_SIGNING_ALGS } from '../protocol/dpop.ts';
import { hasPrivateUseRedirectUri, redirectUrisProblem } from './redirect-uri-policy.ts';
import { clientCredentialsScopeProblem, requireNamedResource } from './grants/client-credentials.ts';
import { jwtBearerGrantMetadata } from './grants/jwt-bearer-grant.ts';
import { assertionTimeProblem } from './grants/assertion-replay.ts';
import { resourceServerInfo } from './resource-server-info.ts';
import { selfRegisteredGrantsProblem } from './self-registered-grants.ts';
import { appOnlyTokenIndex } from './grants/client-credentials.ts';
import { extraTokenClaims, issueRefreshToken, rotateRefreshToken, tokenLifetimes } from './token-policy.ts';

/**
 * oidc-provider's configuration for Gatehouse. Each choice that differs from the library default says why.
 * The provider's own defaults file (lib/helpers/defaults.js) documents every option.
 */
export interface ProviderConfigurationInput {
  ctx: GatehouseContext;
  adapter: AdapterFactory;
  clients: ClientMetadata[];
  introspectionClients: Set<string>;
  resources: ProtectedResources;
  guardedFetch: GuardedFetch;
  findAccount: (ctx: KoaContextWithOIDC, subject: string) => Promise<Account | undefined>;
  renderError: (ctx: KoaContextWithOIDC, out: Record<string, unknown>, error: unknown) => Promise<void>;
  cookieKeys: string[];
  /** False only with `dev.insecureCookies` on an http public URL. */
  secureCookies: boolean;
}

/**
 * CIMD documents are small; anything else the provider fetches for a client (jwks_uri) is capped too. The guarded
 * fetch caps every fetch at the largest of these (authorization-server.ts); the provider holds each to its own.
 */
export const OTHER_FETCH_LIMIT_BYTES = 64 * 1024;

/**
 * Bounds on what one registration stores (RFC 7591 sets none): every registration is kept and listed in the admin
 * console, and anyone may register. No MCP client needs more; a 16 KB body could otherwise hold a name of thousands of
 * characters or a hundred and fifty redirect URIs.
 */
export const REGISTRATION_LIMITS = { clientNameLength: 200, redirectUris: 20 } as const;

function registrationSizeProblem(metadata: Record<string, unknown>): string | undefined {
  const name = metadata.client_name;
  if (typeof name === 'string' && Array.from(name).length > REGISTRATION_LIMITS.clientNameLength) {
    return `client_name must be at most ${REGISTRATION_LIMITS.clientNameLength} characters`;
  }
  const uris = metadata.redirect_uris;
  if (Array.isArray(uris) && uris.length > REGISTRATION_LIMITS.redirectUris) return `at most ${REGISTRATION_LIMITS.redirectUris} redirect_uris`;
  return undefined;
}

export function providerConfiguration(input: ProviderConfigurationInput): Configuration {
  const { ctx, resources } = input;
  const authorization = ctx.config.authorization;
  const cimd = authorization.clientMetadataDocuments;
  const dcr = authorization.dynamicRegistration;
  const signingAlg = ctx.keyring.currentSigningKey().alg;
  // Every algorithm a key of the keyring signs with, current first: a client registered before a rotation to another
  // algorithm keeps the one stored with it (`id_token_signed_response_alg`), and its metadata stays valid.
  const signingAlgs = keyringAlgorithms(ctx.keyring);
  const resourceScopes = [...new Set(resources.all.flatMap((entry) => Object.keys(entry.scopes)))];
  const configuredClientIds = new Set(input.clients.map((client) => client.client_id));

  return {
    adapter: input.adapter,
    clients: input.clients,
    jwks: ctx.keyring.privateJwks(),
    findAccount: input.findAccount,
    renderError: input.renderError,
    // The shared endpoint contract (oidc-provider's defaults are /auth, /reg, /token/revocation, …).
    routes: {
      authorization: '/authorize',
      token: '/token',
      registration: '/register',
      revocation: '/revoke',
      introspection: '/introspect',
      jwks: '/jwks',
    },
    claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
    discovery: jwtBearerGrantMetadata(authorization),
    // Resource scopes are listed too: clients register them in their `scope` metadata (RFC 7591 §2; the MCP SDK
    // does), which oidc-provider checks against this list. The grant records them both as resource scopes (what
    // the access token carries, via getResourceServerInfo) and as approved request scopes (finish-sign-in.ts).
    scopes: [...OIDC_SCOPES, ...resourceScopes],
    // OAuth 2.1: the authorization code flow only (no implicit, no hybrid).
    responseTypes: ['code'],
    // MCP 2025-06-18+ / OAuth 2.1 §4.1.1: PKCE for every client, S256 only (oidc-provider 9 implements only S256).
    pkce: { required: () => true },
    // No client_secret_jwt: secrets are stored hashed, so they cannot serve as an HMAC key.
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: signingAlg,
    },
    enabledJWA: {
      idTokenSigningAlgValues: signingAlgs,
      // The gateway's list (protocol/dpop.ts): a proof the token endpoint accepts is one every route accepts too.
      dPoPSigningAlgValues: [...DPOP_SIGNING_ALGS],
    },
    // RFC 7523 §3 lets the server bound a client assertion's lifetime; oidc-provider checks only that `exp` has not
    // passed. Its replay record lives until `exp`, so one far ahead held a record for ever (or, beyond the store's TTL
    // range, failed the request), and an `iat` minutes ahead is a clock no client has.
    // An `aud` listing another server beside this one is refused too: oidc-provider accepts it, an assertion a client
    // signed for several servers at once, which any of them can present here as the client (audience injection;
    // RFC 7523bis asks for the authorization server alone). Several names of this server (openid-client 5 sends the
    // issuer and the token endpoint) still pass.
    assertJwtClientAuthClaimsAndHeader: async (koaCtx: KoaContextWithOIDC, claims: Record<string, unknown>) => {
      if (Array.isArray(claims.aud)) {
        const ours = koaCtx.oidc.clientJwtAuthExpectedAudience();
        if (!claims.aud.every((audience) => ours.has(audience as string))) throw new errors.InvalidClientAuth('client assertion audience names another server');
      }
      const problem = assertionTimeProblem(claims, seconds(ctx.clock.now()));
      if (problem === 'iat') throw new errors.InvalidClientAuth('client assertion issued in the future (iat)');
      if (problem === 'exp') throw new errors.InvalidClientAuth('client assertion expires more than a day ahead');
    },
    // The redirect URI policy applies to every client, however it registered (DCR, CIMD, configuration, reloaded
    // from the store); a client not in the configuration gets only the interactive grants (self-registered-grants.ts). oidc-provider runs this validator for each listed extra property, before its own schema
    // checks; `software_id` (RFC 7591 §2) is the hook, the check is on `redirect_uris`.
    extraClientMetadata: {
      properties: ['software_id'],
      validator(koaCtx: unknown, key: string, value: unknown, metadata: Record<string, unknown>) {
        if (key !== 'software_id') return;
        // RFC 7591 §2: a string; anything else was stored and echoed back as sent.
        if (value !== undefined && typeof value !== 'string') throw new errors.InvalidClientMetadata('software_id must be a string');
        // New registrations only: a client stored before these bounds must still load.
        if ((koaCtx as KoaContextWithOIDC | undefined)?.oidc?.route === 'registration') {
          const problem = registrationSizeProblem(metadata);
          if (problem !== undefined) throw new errors.InvalidClientMetadata(problem);
          // Only for pairwise subjects, which Gatehouse does not issue; the provider fetched it during registration,
          // so anyone could make the gateway request a URL of their choosing and hold the registration for seconds.
          if (metadata.sector_identifier_uri !== undefined) {
            throw new errors.InvalidClientMetadata('sector_identifier_uri is not supported: subject identifiers are public (subject_types_supported)');
          }
        }
        const problem = redirectUrisProblem(metadata.redirect_uris);
        // The provider's class has one fixed description, written for /authorize ("did not match any of the client's
        // registered redirect_uris"), which told a registering client nothing: the reason is set on it.
        if (problem !== undefined) throw Object.assign(new errors.InvalidRedirectUri(), { error_description: problem });
        const grantsProblem = selfRegisteredGrantsProblem(metadata, configuredClientIds);
        if (grantsProblem !== undefined) throw new errors.InvalidClientMetadata(grantsProblem);
        // Native MCP clients (Cursor, …) register private-use scheme redirect URIs (RFC 8252 §7.1) without
        // `application_type`; oidc-provider accepts those schemes only for native clients, which such a client is.
        // The validator may set metadata, and the schema then checks the URIs with the native rules.
        if (hasPrivateUseRedirectUri(metadata.redirect_uris)) metadata.application_type = 'native';
        // A registered `scope` is what the client asked for at its first 401 (the MCP SDKs register exactly that),
        // not a limit anyone chose: oidc-provider refused every later request beyond it with `invalid_scope`, so such
        // a client could never complete a step-up (MCP "Step-Up Authorization Flow"). The routes' scopes and the
        // user's consent are the limits. Clients stored with one lose it when they are next loaded.
        delete metadata.scope;
      },
    },
    cookies: {
      keys: input.cookieKeys,
      // The session cookie lives at Path=/, so over TLS it can carry the `__Host-` prefix (no subdomain can set or
      // shadow it). The interaction cookies are path-scoped to one interaction, which `__Host-` does not allow.
      names: { session: input.secureCookies ? '__Host-gatehouse-session' : 'gatehouse-session', interaction: '_interaction', resume: '_interaction_resume' },
      long: { httpOnly: true, sameSite: 'lax', signed: true, secure: input.secureCookies },
      short: { httpOnly: true, sameSite: 'lax', signed: true, secure: input.secureCookies },
    },
    interactions: {
      url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
      // A grant covers only the redirect URIs the user approved it for (approved-redirects.ts).
      policy: policyWithRedirectConsent(ctx.store),
    },
    ttl: tokenLifetimes(authorization, () => seconds(ctx.clock.now())),
    issueRefreshToken,
    rotateRefreshToken,
    // Tokens outlive the browser session on purpose: an MCP client keeps working after the browser is closed.
    expiresWithSession: () => false,
    extraTokenClaims: extraTokenClaims(appOnlyTokenIndex(ctx.store, authorization.accessTokenTtlSeconds)),
    fetch: providerFetch(input.guardedFetch, ctx.logger),
    // Never fetched: a client loaded with one (stored before registration refused it, or a CIMD document) keeps it unread.
    sectorIdentifierUriValidate: () => false,
    fetchResponseBodyLimits: {
      'client_id metadata document': cimd.maxBytes,
      jwks_uri: OTHER_FETCH_LIMIT_BYTES,
      sector_identifier_uri: OTHER_FETCH_LIMIT_BYTES,
    },
    // Browser-based MCP clients call the token and revocation endpoints cross-origin; allow exactly the origins of
    // their registered redirect URIs (what a browser app is served from), never `null` (sandboxed/file origins).
    clientBasedCORS(_ctx: unknown, origin: string, client: Client) {
      if (origin === 'null') return false;
      return client.redirectUris.some((uri) => URL.parse(uri)?.origin === origin);
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      // Agents without a browser (MCP client-credentials extension): pre-registered confidential clients only.
      clientCredentials: { enabled: true },
      // DPoP (RFC 9449): a token request with a proof gets `cnf.jkt`-bound tokens (`token_type: DPoP`); a public
      // client's refresh token is bound to the same key (oidc-provider's setRefreshTokenBindings), so a stolen one is
      // useless without it. Proof `jti`s are kept in the shared store (ReplayDetection) across replicas. The gateway
      // checks the proof on every request (src/proxy/dpop-proof.ts). No nonce is required here (the code and PKCE
      // verifier are single-use already; routes that want nonces set `dpopNonce`), but one is taken: the origin's,
      // the routes' too (src/keys/dpop-nonces.ts), since a client keeps one nonce per origin and sends it to both.
      dPoP: { enabled: true, allowReplay: false, nonceSecret: dpopNonceSecret(ctx.keyring), requireNonce: () => false },
      // PAR (RFC 9126) is on by default too, but its endpoint is not mounted (provider-mount.ts): advertising
      // `pushed_authorization_request_endpoint` would send clients to a 404.
      pushedAuthorizationRequests: { enabled: false },
      registration: {
        enabled: dcr.enabled,
        initialAccessToken: dcr.initialAccessToken ?? false,
        // Client ids must not be guessable; the default (nanoid, 21 chars) is fine, secrets come hashed at rest.
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client may revoke only its own tokens.
        allowedPolicy: (_ctx: unknown, client: Client, token: { clientId?: string }) => token.clientId === client.clientId,
      },
      introspection: {
        enabled: true,
        // RFC 7662 §4: introspection reveals token metadata, so only operator-configured confidential clients.
        allowedPolicy: (_ctx: unknown, client: Client) => mayIntrospect(client, input.introspectionClients),
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: (koaCtx: KoaContextWithOIDC, _client: Client, oneOf?: string) => {
          if (oneOf === undefined) requireNamedResource(koaCtx);
          return oneOf ?? resources.defaultResource?.resource;
        },
        useGrantedResource: () => true,
        getResourceServerInfo(koaCtx: KoaContextWithOIDC, resourceIndicator: string) {
          const entry = resources.find(resourceIndicator);
          if (entry === undefined) throw new errors.InvalidTarget('resource is not a protected resource of this gateway');
          const scopeProblem = clientCredentialsScopeProblem(koaCtx, entry);
          if (scopeProblem !== undefined) throw new errors.InvalidScope(scopeProblem);
          return resourceServerInfo(entry, { accessTokenTtlSeconds: authorization.accessTokenTtlSeconds, signingAlg });
        },
      },
      clientIdMetadataDocument: {
        enabled: cimd.enabled,
        ack: 'draft-02',
        allowFetch: (_ctx: unknown, clientId: string) => decideClientIdUrl(clientId, cimd).allowed,
        allowClient: (_ctx: unknown, client: Client) => decideClientIdUrl(client.clientId, cimd).allowed,
        cacheDuration: { min: Math.min(30, cimd.cacheSeconds), max: cimd.cacheSeconds },
      },
    },
  };
}

/** The algorithms of the keyring's signing keys, the current key's first. */
export function keyringAlgorithms(keyring: Keyring): string[] {
  // signingKeys(), not privateJwks(): this runs on every client load, and privateJwks() copies every private key.
  return [...new Set(keyring.signingKeys().map((key) => key.alg))];
}

/** RFC 7662 §4: introspection tells who a token is for, so only the operator's confidential clients may use it. */
export function mayIntrospect(client: Client, introspectionClients: ReadonlySet<string>): boolean {
  return introspectionClients.has(client.clientId) && client.clientAuthMethod !== 'none';
}
