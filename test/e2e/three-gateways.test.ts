import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { decodeJwt } from 'jose';
import { pino } from 'pino';
import type { Browser } from 'playwright-core';
import { startGraphServer, type RunningGraphServer } from '../../examples/graph-server/graph-server.ts';
import { forgetDownstreamTokens } from '../../src/broker/downstream-cache.ts';
import { DEMO_CLIENT_ID, DEMO_GATEWAY_API_SCOPE, DEMO_WORKLOAD_IDENTITY_PATH } from '../../src/config/demo-defaults.ts';
import { startDirectoryApi, type RunningDirectoryApi } from '../../src/demo/directory-api/directory-api.ts';
import { directoryUsersFrom } from '../../src/demo/directory-api/local-users.ts';
import { startLocalIdentityProvider, type LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { generateKeySet, serializeKeySet, type KeySetFile } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { loadUpstreamTokens, saveUpstreamTokens } from '../../src/upstream/token-vault.ts';
import { DEMO_USERS, freePort, launchBrowser, startRedirectListener, type RedirectListener, authorizationCodeFor } from '../support/demo-harness.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { startCountingIdpProxy, type CountingIdpProxy } from './support/counting-idp-proxy.ts';
import { startGatewayProcess, type GatewayProcess } from './support/gateway-process.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';

/**
 * Issue 5's "done when" on real replicas: three `gatehouse start` processes share one Redis store, one key file and
 * one public URL, in front of the sample Graph server on an `identity.mode: obo` route — so each gateway itself asks
 * the identity provider for the user's downstream token. One user signs in once (real browser, MCP SDK auth); their
 * upstream access token is then made expired and their cached downstream token dropped, and 50 concurrent
 * `tools/call get_graph_user_details` spread over the three gateways must all return the user's profile while the
 * identity provider sees exactly one refresh_token grant and one on-behalf-of grant: the single flight is a store
 * lock across processes, not a per-process one. The grants are counted on the wire, in front of the IdP's token
 * endpoint, by a proxy the IdP uses as its issuer URL.
 */
const PROTOCOL = '2026-07-28';
const CALLS = 50;
const REPLICAS = 3;
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** A `tools/call` as a 2026-07-28 client sends it: per-request `_meta` envelope, standard headers mirrored from it. */
async function callGraphTool(gatewayUrl: string, token: string, id: number): Promise<{ status: number; result: unknown; error: unknown }> {
  const body = {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: {
      name: 'get_graph_user_details',
      arguments: {},
      _meta: {
        'io.modelcontextprotocol/protocolVersion': PROTOCOL,
        'io.modelcontextprotocol/clientInfo': { name: 'e2e-three-gateways', version: '1.0.0' },
        'io.modelcontextprotocol/clientCapabilities': {},
      },
    },
  };
  const response = await fetch(`${gatewayUrl}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': PROTOCOL,
      'mcp-method': 'tools/call',
      'mcp-name': 'get_graph_user_details',
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(40_000),
  });
  const text = await response.text();
  // JSON or a one-message SSE stream: the answer is the JSON-RPC message carrying our id.
  const candidates = response.headers.get('content-type')?.includes('text/event-stream')
    ? text.split('\n').filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trim())
    : [text];
  for (const candidate of candidates) {
    try {
      const message = JSON.parse(candidate) as { id?: unknown; result?: unknown; error?: unknown };
      if (message.id === id) return { status: response.status, result: message.result, error: message.error };
    } catch {
      // not JSON: reported below with the status
    }
  }
  return { status: response.status, result: undefined, error: text.slice(0, 300) };
}

describe('single-flight downstream token refresh across three gateway processes on a shared Redis', () => {
  let dir: string;
  let redis: RedisServer | undefined;
  let idpProxy: CountingIdpProxy | undefined;
  let identityProvider: LocalIdentityProvider | undefined;
  let directoryApi: RunningDirectoryApi | undefined;
  let graphServer: RunningGraphServer | undefined;
  let listener: RedirectListener | undefined;
  let browser: Browser | undefined;
  let store: Store | undefined;
  const gateways: GatewayProcess[] = [];
  let keySet: KeySetFile;
  let publicUrl: string;
  const keyPrefix = `gatehouse-e2e-replicas-${process.pid}:`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-e2e-replicas-'));
    redis = await startRedisServer();
    idpProxy = await startCountingIdpProxy();
    const [identityProviderPort, directoryApiPort, graphServerPort, ...gatewayPorts] = await Promise.all(
      Array.from({ length: 3 + REPLICAS }, () => freePort()),
    );
    assert.ok(identityProviderPort && directoryApiPort && graphServerPort && gatewayPorts.length === REPLICAS);
    // One issuer for all replicas: the first one's URL. Tokens are verified locally with the shared keys.
    publicUrl = `http://localhost:${gatewayPorts[0]}`;
    const downstreamAudience = `http://localhost:${directoryApiPort}`;
    const silent = pino({ level: 'silent' });

    idpProxy.target.port = identityProviderPort;
    identityProvider = await startLocalIdentityProvider({
      port: identityProviderPort,
      host: '127.0.0.1',
      issuer: idpProxy.url,
      users: DEMO_USERS.map((user) => ({ ...user, groups: ['gatehouse-users'] })),
      gateway: { clientId: DEMO_CLIENT_ID, redirectUris: [`${publicUrl}/callback`] },
      downstreamAudiences: [downstreamAudience],
      workloadIdentityPath: DEMO_WORKLOAD_IDENTITY_PATH,
      logger: silent,
    });
    directoryApi = await startDirectoryApi({
      port: directoryApiPort,
      host: '127.0.0.1',
      issuer: identityProvider.issuer,
      audience: downstreamAudience,
      users: directoryUsersFrom(identityProvider.users),
    });
    graphServer = await startGraphServer({
      port: graphServerPort,
      host: '127.0.0.1',
      gatewayIssuer: publicUrl,
      audience: `${publicUrl}/mcp`,
      jwksUrl: `${publicUrl}/jwks`,
      graphBaseUrl: directoryApi.url,
      tokenSource: 'obo',
      logger: silent,
    });

    // `gatehouse init`'s key set, in one file every replica reads (keys.source: file).
    keySet = generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' });
    const keysFile = join(dir, 'keys.json');
    await writeFile(keysFile, serializeKeySet(keySet), { mode: 0o600 });
    const configFor = (port: number): Record<string, unknown> => ({
      mode: 'production',
      server: { host: '127.0.0.1', port, publicUrl },
      store: { type: 'redis', redisUrl: redis?.url, keyPrefix },
      keys: { source: 'file', file: keysFile },
      upstream: {
        type: 'oidc',
        issuer: identityProvider?.issuer,
        clientId: DEMO_CLIENT_ID,
        // No client secret anywhere: the IdP trusts assertions from its workload-identity issuer.
        clientAuth: { method: 'federated', issuerUrl: `${identityProvider?.issuer}${DEMO_WORKLOAD_IDENTITY_PATH}` },
        scopes: ['openid', 'profile', 'email', 'offline_access', DEMO_GATEWAY_API_SCOPE],
      },
      routes: [
        {
          path: '/mcp',
          backend: `http://127.0.0.1:${graphServerPort}/mcp`,
          scopes: { 'mcp:tools': 'Use the sample Graph MCP server', 'graph:read': 'Read your directory profile' },
          requiredScopes: ['mcp:tools', 'graph:read'],
          // The gateway itself obtains the Graph token per request and forwards it instead of an assertion.
          identity: { mode: 'obo', downstream: 'graph' },
          downstream: ['graph'],
        },
      ],
      broker: { downstream: [{ name: 'graph', audience: downstreamAudience, scopes: ['User.Read'], grant: 'on-behalf-of' }] },
      dev: { insecureCookies: true },
    });
    const started = await Promise.allSettled(
      gatewayPorts.map((port, index) => startGatewayProcess({ configFile: join(dir, `gatehouse-${index}.yaml`), config: configFor(port), port })),
    );
    for (const outcome of started) if (outcome.status === 'fulfilled') gateways.push(outcome.value);
    const failed = started.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;

    store = await createRedisStore({ url: redis.url, keyPrefix, clock: systemClock, purgeIntervalMs: 0 });
    listener = await startRedirectListener();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    await store?.close().catch(() => undefined);
    await listener?.close();
    await graphServer?.close();
    await directoryApi?.close();
    await identityProvider?.close();
    await idpProxy?.close();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`${CALLS} concurrent tool calls on ${REPLICAS} replicas: one upstream refresh, one on-behalf-of exchange, every call answered`, async () => {
    assert.ok(browser && listener && store && idpProxy);
    const user = DEMO_USERS[0];
    assert.ok(user);

    // The user signs in once, through the first replica (the public URL), with the SDK's own OAuth flow.
    const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'E2E three-replica client' });
    const serverUrl = `${publicUrl}/mcp`;
    assert.equal(await auth(provider, { serverUrl }), 'REDIRECT');
    assert.ok(state.authorizationUrl);
    const { code } = await authorizationCodeFor(browser, { authorizationUrl: state.authorizationUrl.href, user, redirectUri: listener.url });
    assert.equal(await auth(provider, { serverUrl, authorizationCode: code }), 'AUTHORIZED');
    const accessToken = state.tokens?.access_token;
    assert.ok(accessToken);
    const subject = decodeJwt(accessToken).sub;
    assert.ok(subject);

    // The sealed upstream tokens are in Redis. Make the access token expired (keeping the refresh token) and drop
    // any cached downstream token, so the burst must refresh upstream and exchange on-behalf-of again.
    const vault = { store, keyring: keyringFromKeySet(keySet), clock: systemClock };
    const upstream = await loadUpstreamTokens(vault, subject);
    assert.ok(upstream?.refreshToken, 'the sign-in stored the user\'s upstream tokens with a refresh token');
    const upstreamSubject = decodeJwt(upstream.accessToken).sub;
    assert.equal(upstreamSubject, user.id, 'the upstream access token is the signed-in user\'s');
    await saveUpstreamTokens(vault, subject, { ...upstream, expiresAt: Date.now() - 60_000 });
    await forgetDownstreamTokens(store, subject);

    const grantsBefore = idpProxy.grants.length;
    const results = await Promise.all(
      Array.from({ length: CALLS }, (_, index) => {
        const gateway = gateways[index % REPLICAS];
        assert.ok(gateway);
        return callGraphTool(gateway.url, accessToken, index + 1);
      }),
    );
    const burstGrants = idpProxy.grants.slice(grantsBefore);

    const failures = results.filter((outcome) => outcome.status !== 200 || outcome.error !== undefined || (outcome.result as { isError?: boolean } | undefined)?.isError);
    assert.deepEqual(failures, [], `every call succeeded; gateway output:\n${gateways.map((gateway) => gateway.output()).join('\n---\n')}`);
    for (const outcome of results) {
      const profile = (outcome.result as { structuredContent?: Record<string, unknown> }).structuredContent;
      assert.equal(profile?.id, user.id);
      assert.equal(profile?.displayName, user.name);
      assert.equal(profile?.mail, user.email);
    }

    const refreshes = burstGrants.filter((grant) => grant.grantType === 'refresh_token');
    const exchanges = burstGrants.filter((grant) => grant.grantType === JWT_BEARER);
    assert.deepEqual(refreshes, [{ grantType: 'refresh_token', status: 200, subject: user.id }], 'exactly one upstream refresh');
    assert.deepEqual(exchanges, [{ grantType: JWT_BEARER, status: 200, subject: user.id }], 'exactly one on-behalf-of exchange');
    assert.equal(burstGrants.length, 2, `no other token requests: ${JSON.stringify(burstGrants)}`);

    const refreshed = await loadUpstreamTokens(vault, subject);
    assert.ok(refreshed && refreshed.expiresAt > Date.now(), 'the refreshed upstream tokens were stored for every replica');
  });
});
