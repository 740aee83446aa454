import { readOperatorFileSync } from '../config/operator-file.ts';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import type { FastifyPluginAsync } from 'fastify';
import Provider from 'oidc-provider';
import type { AuthorizationMetrics } from './authorization-metrics.ts';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { createOidcAdapter, exposeStoreOutages, providerFacing } from '../store/oidc-adapter.ts';
import { installAtomicReplayDetection } from './replay-detection.ts';
import type { UpstreamClient } from '../upstream/types.ts';
import { installAccessTokenIntrospection } from './access-token-introspection.ts';
import { installAccessTokenRevocation } from './access-token-revocation.ts';
import { accountFinder } from './account-record.ts';
import { withAuthorizationHooks } from './adapter-hooks.ts';
import type { EndGrant } from '../grants/end-grant.ts';
import { createBrowserCookies } from './browser-cookies.ts';
import { installClientOverrides } from './client-overrides.ts';
import { createGuardedFetch, type GuardedFetchOptions } from './client-metadata-fetch.ts';
import { registerConsentRoutes } from './consent-routes.ts';
import { deriveCookieKeys } from './cookie-keys.ts';
import { registerSignInRoutes } from './finish-sign-in.ts';
import type { ConsoleSignIn, InteractionDeps } from './interaction-deps.ts';
import { confidentialClientIds, preRegisteredClientMetadata } from './pre-registered-clients.ts';
import { protectedResources } from './protected-resources.ts';
import { keyringAlgorithms, mayIntrospect, OTHER_FETCH_LIMIT_BYTES, providerConfiguration } from './provider-configuration.ts';
import { installResourceScopes, installRetryAfter, installScopesSupported, renderProviderError } from './provider-middleware.ts';
import { mountProvider } from './provider-mount.ts';
import { installJwtBearerGrant, type JwtBearerGrantDeps } from './grants/jwt-bearer-grant.ts';
import { installIssuanceAudit } from './grants/issuance-audit.ts';
import type { AuditRecord } from '../records/audit.ts';
import { cookieSecurity } from './cookie-security.ts';
import { followKeyring } from './current-provider.ts';
import { recordProviderMetrics, replayRecorder } from './provider-metrics.ts';
import { installIdempotentRefreshRetry } from './refresh-retry.ts';
import { installCodeExchangeFinish } from './code-exchange-retry.ts';
import { createEndGrant } from '../grants/end-grant.ts';

/**
 * The OAuth 2.1 authorization server MCP clients talk to: oidc-provider (metadata, CIMD, DCR, authorize, token,
 * revoke, introspect, JWKS) mounted in Fastify, plus our consent page, upstream sign-in and callback.
 * See docs/authorization.md.
 */
export interface AuthorizationServerDeps {
  upstream: UpstreamClient;
  /** Extra grant types (the broker's RFC 8693 token exchange), each registered on the provider. */
  grantTypes?: Array<(provider: Provider) => void>;
  /** Test seams of the CIMD fetch guard (name resolution, a single allowed test host); never set in production. */
  clientMetadataFetch?: Pick<GuardedFetchOptions, 'allowAddress' | 'resolve'>;
  /**
   * Finishes upstream sign-ins the admin console started (interaction id `console:…`) after `/callback` validated
   * them: the admin console's `completeConsoleSignIn`. Without it such a callback is a 404 page.
   */
  consoleSignIn?: ConsoleSignIn;
  /** Where token issuance, refresh outcomes and grant revocations are counted (provider-metrics.ts). */
  metrics?: AuthorizationMetrics;
  /** The app's grant-ending function; by default one built from the store (adapter-hooks.ts). */
  endGrant?: EndGrant;
  /**
   * Where tokens issued on standing credentials (client credentials, JWT bearer) are recorded: the gateway's audit
   * log, beside its MCP requests and token exchanges (grants/issuance-audit.ts). Without it they are not recorded.
   */
  recordAudit?: (entry: AuditRecord) => void;
  /** Keys of the issuers trusted for JWT grants (grants/trusted-issuer-keys.ts); tests inject a fetch through it. */
  trustedIssuerKeys?: JwtBearerGrantDeps['keysOf'];
}

export interface AuthorizationServer {
  plugin: FastifyPluginAsync;
  provider: Provider;
}


export async function createAuthorizationServer(ctx: GatehouseContext, deps: AuthorizationServerDeps): Promise<AuthorizationServer> {
  const authorization = ctx.config.authorization;
  const cimd = authorization.clientMetadataDocuments;
  const resources = protectedResources(ctx.publicUrl, ctx.config.routes);
  const secure = cookieSecurity(ctx);

  const guardedFetch = createGuardedFetch({
    // The provider holds each kind of document to its own limit (fetchResponseBodyLimits); a jwks_uri is not a CIMD
    // document, and capping it at the document limit refused ordinary key sets.
    maxBytes: Math.max(cimd.maxBytes, OTHER_FETCH_LIMIT_BYTES),
    timeoutMs: cimd.timeoutMs,
    allowLoopback: cimd.allowLoopback,
    ...(cimd.trustedCaFile === undefined ? {} : { extraCa: readOperatorFileSync(cimd.trustedCaFile) }),
    ...deps.clientMetadataFetch,
  });

  // One grant-ending function for the adapter hooks and the code exchange's finish (code-exchange-retry.ts).
  const endGrant = deps.endGrant ?? createEndGrant({ store: ctx.store, clock: ctx.clock, accessTokenTtlSeconds: authorization.accessTokenTtlSeconds, grantLifetimeSeconds: authorization.refreshTokenAbsoluteSeconds });
  // Outermost, so the hooks' own store calls are covered too: an outage is a 503 the provider renders, not a 500.
  const adapter = exposeStoreOutages(withAuthorizationHooks(createOidcAdapter(ctx.store, ctx.clock), {
    store: ctx.store,
    clock: ctx.clock,
    accessTokenTtlSeconds: authorization.accessTokenTtlSeconds,
    grantLifetimeSeconds: authorization.refreshTokenAbsoluteSeconds,
    refreshReuseGraceSeconds: authorization.refreshReuseGraceSeconds,
    signingAlgorithms: () => keyringAlgorithms(ctx.keyring),
    canonicalRoute: (resource) => resources.find(resource)?.resource,
    onReplayDetected: deps.metrics === undefined ? undefined : replayRecorder(deps.metrics),
    endGrant,
  }));

  const findAccount = accountFinder(ctx.store);
  const clients = await preRegisteredClientMetadata(authorization.clients);
  const introspectionClients = confidentialClientIds(authorization.clients);
  const buildProvider = (): Provider => {
    const provider = new Provider(
      ctx.publicUrl,
      providerConfiguration({
        ctx,
        adapter,
        clients,
        introspectionClients,
        resources,
        guardedFetch,
        findAccount: (koaCtx, subject) => providerFacing(findAccount(koaCtx, subject)),
        renderError: (koaCtx, out) => renderProviderError(koaCtx, out, ctx.config.branding),
        cookieKeys: deriveCookieKeys(ctx.keyring),
        secureCookies: secure,
      }),
    );
    // We present every request as arriving at the public URL (provider-mount.ts), so the provider trusts those headers.
    provider.proxy = true;
    installClientOverrides(provider);
    installRetryAfter(provider);
    installScopesSupported(provider, resources);
    installAtomicReplayDetection(provider, { store: ctx.store, clock: ctx.clock });
    installResourceScopes(provider, resources);
    installAccessTokenRevocation(provider, { keyring: ctx.keyring, issuer: ctx.publicUrl, logger: ctx.logger });
    installAccessTokenIntrospection(provider, {
      keyring: ctx.keyring,
      issuer: ctx.publicUrl,
      store: ctx.store,
      clock: ctx.clock,
      logger: ctx.logger,
      mayIntrospect: (client) => mayIntrospect(client, introspectionClients),
    });
    installIdempotentRefreshRetry(provider, {
      store: ctx.store,
      keyring: ctx.keyring,
      graceSeconds: authorization.refreshReuseGraceSeconds,
      logger: ctx.logger,
    });
    installCodeExchangeFinish(provider, {
      store: ctx.store,
      clock: ctx.clock,
      endGrant,
      ...(deps.metrics === undefined ? {} : { onReplayDetected: replayRecorder(deps.metrics) }),
    });
    // Before the JWT bearer grant's middleware, so what that answers on its own is recorded too.
    if (deps.recordAudit !== undefined) installIssuanceAudit(provider, { recordAudit: deps.recordAudit, clock: ctx.clock, resources });
    installJwtBearerGrant(provider, { ctx, resources, ...(deps.trustedIssuerKeys === undefined ? {} : { keysOf: deps.trustedIssuerKeys }) });
    for (const register of deps.grantTypes ?? []) register(provider);
    // Every instance (the provider is rebuilt after a key rotation) reports to the same metrics.
    if (deps.metrics !== undefined) recordProviderMetrics(provider, deps.metrics);
    provider.on('server_error', (_ctx: unknown, error: unknown) => ctx.logger.error({ err: error }, 'authorization server error'));
    return provider;
  };
  const current = followKeyring(buildProvider, ctx.keyring, ctx.logger);

  const configuredClients = new Set(authorization.clients.map((client) => client.clientId));

  const plugin: FastifyPluginAsync = async (app) => {
    if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) await app.register(formbody);
    if (!app.hasDecorator('parseCookie')) await app.register(cookie);
    app.addHook('onClose', async () => current.close());
    const interactionDeps: InteractionDeps = {
      ctx,
      get provider() {
        return current.get();
      },
      upstream: deps.upstream,
      resources,
      cookies: createBrowserCookies({ keyring: ctx.keyring, secure, app }),
      configuredClients,
      consoleSignIn: deps.consoleSignIn,
    };
    mountProvider(app, { ctx, provider: current, resources });
    registerConsentRoutes(app, interactionDeps);
    registerSignInRoutes(app, interactionDeps);
  };

  return {
    plugin,
    /** The instance in use now; it is replaced after a signing-key rotation (see current-provider.ts). */
    get provider() {
      return current.get();
    },
  };
}
