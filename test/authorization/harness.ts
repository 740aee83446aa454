import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type Provider from 'oidc-provider';
import { createAuthorizationServer, type AuthorizationServerDeps } from '../../src/authorization/authorization-server.ts';
import { configSchema, type GatehouseConfig } from '../../src/config/schema.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import { type KeySetFile } from '../../src/keys/key-set.ts';
import type { Keyring } from '../../src/keys/keyring.ts';
import { systemClock, type Clock } from '../../src/runtime/clock.ts';
import type { GatehouseContext } from '../../src/context/gatehouse-context.ts';
import { buildServer } from '../../src/server/app.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { authorizationResponseError } from '../../src/upstream/errors.ts';
import { saveUpstreamTokens, type TokenVaultDeps } from '../../src/upstream/token-vault.ts';
import type { Reauthentication, UpstreamClient, UpstreamIdentity } from '../../src/upstream/types.ts';
import { captureLogs, testContext, type LogCapture } from '../support/server-context.ts';
export { freePort } from '../support/ports.ts';
import { freePort } from '../support/ports.ts';
import { testKeyring } from '../support/keyring.ts';

/**
 * An authorization server on a real listening port with a fake upstream IdP that behaves like one: beginSignIn
 * returns a URL on the same test server that redirects to /callback with a code and the state; completeSignIn checks
 * the state (single use) and the browser's state cookie, seals the upstream tokens like the real upstream client
 * (with the IdP's refresh-token lifetime) and returns a fixed identity; an IdP error becomes the real client's
 * UpstreamError naming the interaction.
 */

export const TEST_IDENTITY: UpstreamIdentity = {
  subject: 'https://idp.test|alice',
  issuer: 'https://idp.test',
  name: 'Alice Example',
  email: 'alice@example.test',
  groups: ['engineering'],
};

export interface FakeUpstream extends UpstreamClient {
  /** When set, the fake IdP answers the next sign-in with this error instead of a code. */
  nextError: string | undefined;
  signIns: number;
}

/** The refresh-token lifetime the fake IdP reports (`refresh_token_expires_in`); not the vault's 90-day default. */
export const FAKE_REFRESH_TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600;

export function createFakeUpstream(publicUrl: () => string, vault?: TokenVaultDeps): FakeUpstream {
  const pending = new Map<string, { interactionId: string; cookie: string; claims?: string; reauthenticate?: Reauthentication }>();
  const upstream: FakeUpstream = {
    nextError: undefined,
    signIns: 0,
    async beginSignIn({ interactionId, browserBinding, claims, reauthenticate }) {
      const state = randomBytes(16).toString('base64url');
      // As the real client: the browser's binding is reused (src/upstream/sign-in-state.ts).
      const cookie = browserBinding ?? randomBytes(16).toString('base64url');
      pending.set(state, { interactionId, cookie, ...(claims === undefined ? {} : { claims }), ...(reauthenticate === undefined ? {} : { reauthenticate }) });
      return { authorizationUrl: `${publicUrl()}/fake-idp/authorize?state=${state}`, stateCookie: cookie };
    },
    async completeSignIn({ callbackUrl, stateCookie }) {
      const state = callbackUrl.searchParams.get('state') ?? '';
      const entry = pending.get(state);
      pending.delete(state);
      if (entry === undefined) throw new ProtocolError('invalid_request', 'The sign-in state is missing, expired or was already used.');
      if (entry.cookie !== stateCookie) throw new ProtocolError('access_denied', 'The sign-in was started in another browser.');
      const error = callbackUrl.searchParams.get('error');
      if (error !== null) throw authorizationResponseError(error, entry.interactionId);
      upstream.signIns += 1;
      const tokens = { accessToken: 'upstream-access-token-value', refreshToken: 'upstream-refresh-token-value', expiresAt: Date.now() + 3600_000 };
      if (vault !== undefined) {
        await saveUpstreamTokens(vault, TEST_IDENTITY.subject, tokens, { refreshTokenLifetimeSeconds: FAKE_REFRESH_TOKEN_LIFETIME_SECONDS });
      }
      // As the real client: what the sign-in asked for comes back with it (a step-up round trip asks it again).
      return {
        interactionId: entry.interactionId,
        identity: TEST_IDENTITY,
        tokens,
        ...(entry.claims === undefined ? {} : { requestedClaims: entry.claims }),
        ...(entry.reauthenticate === undefined ? {} : { reauthenticate: entry.reauthenticate }),
      };
    },
    refresh: () => Promise.reject(new Error('not used')),
    exchangeForDownstream: () => Promise.reject(new Error('not used')),
    checkHealth: async () => undefined,
  };
  return upstream;
}

function fakeIdpRoutes(upstream: FakeUpstream): FastifyPluginAsync {
  return async (app) => {
    app.get('/fake-idp/authorize', async (request, reply) => {
      const { state } = request.query as { state?: string };
      const error = upstream.nextError;
      upstream.nextError = undefined;
      const query = error === undefined ? `code=upstream-code&state=${state}` : `error=${error}&state=${state}`;
      return reply.redirect(`/callback?${query}`, 302);
    });
  };
}


export interface TestServer {
  app: FastifyInstance;
  provider: Provider;
  ctx: GatehouseContext;
  store: Store;
  upstream: FakeUpstream;
  logs: LogCapture;
  publicUrl: string;
  /** Where the test server actually listens (differs from publicUrl only with `publicUrlScheme: 'https'`). */
  listenUrl: string;
  resource: string;
  close(): Promise<void>;
}

export interface StartOptions {
  authorization?: Record<string, unknown>;
  routes?: Array<Record<string, unknown>>;
  storePath?: string;
  port?: number;
  keyring?: Keyring;
  clock?: Clock;
  deps?: Partial<AuthorizationServerDeps>;
  extraConfig?: Record<string, unknown>;
  /** `https`: the public URL is https (as behind a TLS-terminating proxy) while the test server listens on http. */
  publicUrlScheme?: 'http' | 'https';
  /** A path on the public URL (issuer with a path, RFC 8414 §3.1). */
  basePath?: string;
  /** A store shared with other instances (replicas); the caller closes it. */
  store?: Store;
  /** The public URL of another instance (replicas behind one load balancer share it). */
  publicUrl?: string;
  /** A real upstream client built on this server's context, instead of the fake IdP. */
  upstreamFactory?: (ctx: GatehouseContext) => UpstreamClient;
}

export async function startAuthorizationServer(options: StartOptions = {}): Promise<TestServer> {
  const port = options.port ?? (await freePort());
  const listenUrl = `http://127.0.0.1:${port}`;
  // listenUrl has no path; with basePath the public URL does.
  const publicUrl =
    options.publicUrl ?? (options.publicUrlScheme === 'https' ? `https://127.0.0.1:${port}` : listenUrl) + (options.basePath ?? '');
  const config: GatehouseConfig = configSchema.parse({
    routes: options.routes ?? [{ path: '/mcp', backend: 'http://127.0.0.1:9/', scopes: { 'mcp:tools': 'Use the tools of the test server' } }],
    authorization: options.authorization ?? {},
    dev: { insecureCookies: options.publicUrlScheme !== 'https' },
    server: { publicUrl, port },
    ...options.extraConfig,
  });
  const clock = options.clock ?? systemClock;
  const store = options.store ?? (await createSqliteStore({ path: options.storePath ?? ':memory:', clock, purgeIntervalMs: 0 }));
  const { logger, logs } = captureLogs();
  const ctx = testContext({ config, publicUrl, store, keyring: options.keyring ?? testKeyring(clock.now()), clock, logger });
  const upstream = createFakeUpstream(() => publicUrl, { store, keyring: ctx.keyring, clock });
  const { plugin, provider } = await createAuthorizationServer(ctx, {
    upstream: options.upstreamFactory?.(ctx) ?? upstream,
    ...options.deps,
  });
  const app = await buildServer(ctx, { plugins: [plugin, fakeIdpRoutes(upstream)] });
  await app.listen({ host: '127.0.0.1', port });
  return {
    app,
    provider,
    ctx,
    store,
    upstream,
    logs,
    publicUrl,
    listenUrl,
    resource: `${publicUrl}/mcp`,
    async close() {
      await app.close();
      if (options.store === undefined) await store.close();
    },
  };
}

/**
 * A browser: a cookie jar and manual redirects, so each hop can be inspected. Cookies are kept per origin, name and
 * `Path` and sent where the path matches (RFC 6265 §5.1.4), as a browser does: oidc-provider's interaction cookies
 * share a name and differ by path, so two authorizations of one browser each keep their own. The key is
 * `<origin> <name>` for a cookie of `Path=/` (what tests look up), `<origin> <name> <path>` otherwise.
 */
export class TestBrowser {
  readonly cookies = new Map<string, string>();

  async request(url: string, init: { method?: string; body?: string; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    const { origin, pathname } = new URL(url);
    const jar = [...this.cookies]
      .map(([key, value]) => ({ parts: key.split(' '), value }))
      .filter(({ parts: [keyOrigin, , path = '/'] }) => keyOrigin === origin && pathMatches(pathname, path))
      .map(({ parts, value }) => `${parts[1]}=${value}`);
    if (jar.length > 0) headers.cookie = jar.join('; ');
    const response = await fetch(url, { method: init.method ?? 'GET', body: init.body, headers, redirect: 'manual', ...(init.signal ? { signal: init.signal } : {}) });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      const path = /;\s*path=([^;]*)/i.exec(line)?.[1]?.trim() || '/';
      const key = path === '/' ? `${origin} ${name}` : `${origin} ${name} ${path}`;
      const expired = /max-age=0|expires=thu, 01 jan 1970/i.test(line);
      if (expired || value === '') this.cookies.delete(key);
      else this.cookies.set(key, value);
    }
    return response;
  }

  /** Follows redirects on `stopOrigin`'s server until one leaves it (the client's redirect URI) or a page is shown. */
  async follow(url: string, stopOrigin: string): Promise<{ response: Response; url: string }> {
    let current = url;
    for (let hop = 0; hop < 20; hop += 1) {
      const response = await this.request(current);
      const location = response.headers.get('location');
      if (response.status < 300 || response.status >= 400 || location === null) return { response, url: current };
      const next = new URL(location, current).href;
      if (!next.startsWith(stopOrigin)) return { response, url: next };
      await response.body?.cancel();
      current = next;
    }
    throw new Error('too many redirects');
  }
}

/** RFC 6265 §5.1.4: the request path is the cookie path, or below it. */
function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  return requestPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/');
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export interface RegisteredClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  [key: string]: unknown;
}

export async function registerClient(server: TestServer, metadata: Record<string, unknown>): Promise<Response> {
  return fetch(`${server.listenUrl}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(metadata),
  });
}

export const CLIENT_REDIRECT = 'http://127.0.0.1:53682/callback';

/** A pre-registered confidential client (client_secret_basic), as configured in `authorization.clients`. */
export const CONFIDENTIAL_CLIENT = { clientId: 'backend-service', clientSecret: 'a-long-backend-secret-value-0123456789' };
export const confidentialClientConfig = { ...CONFIDENTIAL_CLIENT, redirectUris: ['https://backend.example.test/callback'] };

/** The RFC 6749 §2.3.1 Basic authorization header of a client id and secret. */
export const basicAuthorization = (clientId: string, secret: string): string => `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`;

export async function registerPublicClient(server: TestServer, extra: Record<string, unknown> = {}): Promise<RegisteredClient> {
  const response = await registerClient(server, {
    client_name: 'Test MCP Client',
    redirect_uris: [CLIENT_REDIRECT],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...extra,
  });
  if (response.status !== 201) throw new Error(`registration failed: ${response.status} ${await response.text()}`);
  return (await response.json()) as RegisteredClient;
}

export function authorizeUrl(server: TestServer, params: Record<string, string | undefined>): string {
  const url = new URL('/authorize', server.publicUrl);
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
  return url.href;
}

/** Reads the hidden form fields of the consent page. */
export function consentForm(html: string): { action: string; consentState: string; csrf: string } {
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1] ?? '';
  const consentState = /name="consent_state" value="([^"]+)"/.exec(html)?.[1] ?? '';
  const csrf = /name="csrf_token" value="([^"]+)"/.exec(html)?.[1] ?? '';
  return { action: action.replace(/&amp;/g, '&'), consentState, csrf };
}

export interface AuthorizationOutcome {
  /** The final URL the browser was sent to (the client's redirect URI with code/error, or a page). */
  url: URL;
  response: Response;
}

/** Drives one full authorization: /authorize → consent page → Approve → fake IdP → callback → client redirect. */
export async function authorize(
  server: TestServer,
  browser: TestBrowser,
  params: Record<string, string | undefined>,
  decision: 'approve' | 'deny' = 'approve',
  /** Appended to the query as written (a parameter spelled the way no URLSearchParams would spell it). */
  rawQuery = '',
): Promise<AuthorizationOutcome> {
  const first = await browser.follow(authorizeUrl(server, params) + rawQuery, server.publicUrl);
  if (first.url.startsWith(server.publicUrl) && first.response.status === 200) {
    const html = await first.response.text();
    const form = consentForm(html);
    if (form.consentState === '') return { url: new URL(first.url), response: new Response(html, { status: 200 }) };
    const post = await browser.request(new URL(form.action, server.publicUrl).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.publicUrl },
      body: new URLSearchParams({ consent_state: form.consentState, csrf_token: form.csrf, decision }).toString(),
    });
    const location = post.headers.get('location');
    if (location === null) return { url: new URL(form.action, server.publicUrl), response: post };
    const next = new URL(location, server.publicUrl).href;
    if (!next.startsWith(server.publicUrl)) return { url: new URL(next), response: post };
    const final = await browser.follow(next, server.publicUrl);
    return { url: new URL(final.url), response: final.response };
  }
  return { url: new URL(first.url), response: first.response };
}

export async function tokenRequest(server: TestServer, params: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.publicUrl}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(params).toString(),
  });
}

export interface IssuedTokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  scope?: string;
}

/** Authorizes `client` through consent and the fake IdP and returns the code with its verifier. */
export async function obtainCode(server: TestServer, client: RegisteredClient, browser = new TestBrowser()): Promise<{ code: string; verifier: string }> {
  const { verifier, challenge } = pkcePair();
  const outcome = await authorize(server, browser, {
    client_id: client.client_id,
    redirect_uri: client.redirect_uris[0],
    response_type: 'code',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: server.resource,
    scope: 'mcp:tools',
  });
  const code = outcome.url.searchParams.get('code');
  if (code === null) throw new Error(`no code: ${outcome.url.href}`);
  return { code, verifier };
}

export async function exchangeCode(server: TestServer, client: RegisteredClient, code: string, verifier: string): Promise<Response> {
  return tokenRequest(server, {
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: client.redirect_uris[0] ?? '',
    client_id: client.client_id,
    resource: server.resource,
  });
}

export async function obtainTokens(server: TestServer, client: RegisteredClient): Promise<IssuedTokens> {
  const { code, verifier } = await obtainCode(server, client);
  const response = await exchangeCode(server, client, code, verifier);
  if (response.status !== 200) throw new Error(`token request failed: ${response.status} ${await response.text()}`);
  return (await response.json()) as IssuedTokens;
}

/** The `gid` claim of an access token (decoded only; signature checks are in the flow test). */
export function grantIdOf(accessToken: string): string {
  const payload = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as { gid?: string };
  if (typeof payload.gid !== 'string') throw new Error('no gid claim');
  return payload.gid;
}

/** A keyring whose key set the test replaces, notifying listeners like the reloading keyring does. */
export function swappableKeyring(initial: KeySetFile) {
  let inner = keyringFromKeySet(initial);
  const listeners = new Set<() => void>();
  const keyring: Keyring & { onChange(listener: () => void): () => void; swap(next: KeySetFile): void } = {
    currentSigningKey: () => inner.currentSigningKey(),
    signingKeys: () => inner.signingKeys(),
    publicJwks: () => inner.publicJwks(),
    privateJwks: () => inner.privateJwks(),
    seal: (plaintext, context) => inner.seal(plaintext, context),
    unseal: (sealed, context) => inner.unseal(sealed, context),
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    swap(next) {
      inner = keyringFromKeySet(next);
      for (const listener of listeners) listener();
    },
  };
  return keyring;
}

/**
 * The parameters of an ordinary authorization request to the test server: PKCE S256, the route's resource, the
 * loopback redirect URI; `extra` adds or replaces any of them (a test varies one parameter at a time).
 */
export function authorizationParams(
  server: Pick<TestServer, 'resource'>,
  clientId: string,
  challenge: string,
  extra: Record<string, string | undefined> = {},
): Record<string, string> {
  const params: Record<string, string | undefined> = {
    client_id: clientId,
    redirect_uri: CLIENT_REDIRECT,
    response_type: 'code',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: server.resource,
    scope: 'mcp:tools',
    ...extra,
  };
  return Object.fromEntries(Object.entries(params).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** Two authorization-server replicas behind one public URL, each with its own connection to one Redis, one keyring. */
export async function startAuthorizationReplicas(redisUrl: string, options: Omit<StartOptions, 'store' | 'keyring' | 'publicUrl'> = {}) {
  const stores: Store[] = [];
  const store = async () => {
    const created = await createRedisStore({ url: redisUrl, keyPrefix: 'gh-test:', clock: systemClock, purgeIntervalMs: 0 });
    stores.push(created);
    return created;
  };
  const keyring = testKeyring();
  const a = await startAuthorizationServer({ ...options, store: await store(), keyring });
  const b = await startAuthorizationServer({ ...options, store: await store(), keyring, publicUrl: a.publicUrl });
  return {
    a,
    b,
    async close() {
      await a.close();
      await b.close();
      for (const opened of stores) await opened.close();
    },
  };
}
