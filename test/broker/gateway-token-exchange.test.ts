import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { createMetrics } from '../../src/observability/metrics.ts';
import { createRevokedGrantsCache, type RevokedGrantsCache } from '../../src/grants/revoked-grants.ts';
import { requestDpopProof } from '../../src/authorization/grants/dpop-binding.ts';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { createDpopKey, dpopProof } from '../support/dpop.ts';
import { registerTokenExchangeGrant, TOKEN_EXCHANGE_GRANT } from '../../src/broker/token-exchange-grant.ts';
import { createTokenBroker } from '../../src/broker/token-broker.ts';
import type { TokenBroker } from '../../src/broker/types.ts';
import { configSchema } from '../../src/config/schema.ts';


import { createIdentityAssertionSigner } from '../../src/proxy/identity-assertion.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { startDirectoryApi, type RunningDirectoryApi } from '../../src/demo/directory-api/directory-api.ts';
import { saveUpstreamTokens } from '../../src/upstream/token-vault.ts';
import { startGraphServer, type RunningGraphServer } from '../../examples/graph-server/graph-server.ts';
import { freePort, startAuthorizationServer, type TestServer } from '../authorization/harness.ts';
import { capturingLogger as captureLogs, scriptedUpstream } from './support/fixtures.ts';
import { testKeyring } from '../support/keyring.ts';

/**
 * The backend path end to end on real parts: the gateway's authorization server with the broker's RFC 8693 grant,
 * the real broker on the gateway's store, the proxy's identity-assertion signer, the sample Graph server in broker
 * mode and the demo directory API standing in for Graph. Only the upstream IdP's on-behalf-of answer is scripted.
 */
describe('backend token exchange through the gateway', () => {
  const subject = 'tenant-1/alice-id';
  const backendSecret = `backend-${randomUUID()}`;
  const keyring = testKeyring();
  const log = captureLogs();
  const metrics = createMetrics({ clock: systemClock });
  let idpKey: CryptoKey;
  let gateway: TestServer;
  let directory: RunningDirectoryApi;
  let backend: RunningGraphServer;
  let broker: TokenBroker | undefined;
  let revokedGrants: RevokedGrantsCache | undefined;
  let publicUrl: string;
  const graphTokens: string[] = [];
  const upstream = scriptedUpstream({
    exchange: async (request) => {
      const token = await new SignJWT({ scp: 'User.Read', oid: 'alice-id' })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer('https://idp.test')
        .setAudience(request.audience)
        .setSubject('pairwise')
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(idpKey);
      graphTokens.push(token);
      return { accessToken: token, expiresAt: Date.now() + 3_600_000, scope: request.scopes.join(' ') };
    },
  });

  before(async () => {
    const idp = await generateKeyPair('ES256');
    idpKey = idp.privateKey;
    directory = await startDirectoryApi({
      port: 0,
      issuer: 'https://idp.test',
      audience: 'https://graph.microsoft.com',
      jwks: createLocalJWKSet({ keys: [{ ...(await exportJWK(idp.publicKey)), alg: 'ES256' }] }),
      users: [{ id: 'alice-id', displayName: 'Alice Example', mail: 'alice@example.test', userPrincipalName: 'alice@example.test' }],
    });
    const port = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    const settings = {
      authorization: {
        clients: [{ clientId: 'graph-server', clientSecret: backendSecret, grantTypes: [TOKEN_EXCHANGE_GRANT], allowedDownstream: ['graph'] }],
      },
      extraConfig: {
        broker: { downstream: [{ name: 'graph', audience: 'https://graph.microsoft.com', scopes: ['https://graph.microsoft.com/User.Read'] }] },
      },
    };
    const routes = [
      { path: '/mcp', backend: 'http://127.0.0.1:9/mcp', downstream: ['graph'] },
      { path: '/graph', type: 'http' as const, backend: 'http://127.0.0.1:9/api', downstream: ['graph'] },
    ];
    const config = configSchema.parse({
      routes,
      authorization: settings.authorization,
      ...settings.extraConfig,
    });
    const lazyRevokedGrants = {
      isRevoked: (grantId: string) => revokedGrants!.isRevoked(grantId),
      isCurrent: () => revokedGrants!.isCurrent(),
    };
    const lazyBroker: TokenBroker = {
      getDownstreamToken: (input) => {
        if (!broker) throw new Error('broker not ready');
        return broker.getDownstreamToken(input);
      },
    };
    gateway = await startAuthorizationServer({
      port,
      keyring,
      ...settings,
      routes,
      deps: { metrics, grantTypes: [(provider) => registerTokenExchangeGrant(provider, { config, publicUrl, keyring, clock: systemClock, broker: lazyBroker, revokedGrants: lazyRevokedGrants, checkDpopProof: (grantCtx) => requestDpopProof(provider, grantCtx as unknown as KoaContextWithOIDC) })] },
    });
    revokedGrants = createRevokedGrantsCache({ store: gateway.store, clock: systemClock });
    await revokedGrants.start();
    broker = createTokenBroker({ config, store: gateway.store, keyring, clock: systemClock, logger: log.logger, upstream });
    await saveUpstreamTokens({ store: gateway.store, keyring, clock: systemClock }, subject, {
      accessToken: `upstream-at-${randomUUID()}`,
      refreshToken: `upstream-rt-${randomUUID()}`,
      expiresAt: Date.now() + 3_600_000,
    });
    backend = await startGraphServer({
      port: 0,
      gatewayIssuer: publicUrl,
      audience: `${publicUrl}/mcp`,
      httpAudience: `${publicUrl}/graph`,
      jwksUrl: `${publicUrl}/jwks`,
      graphBaseUrl: directory.url,
      tokenSource: 'broker',
      broker: { tokenUrl: `${publicUrl}/token`, clientId: 'graph-server', clientSecret: backendSecret },
      logger: log.logger,
    });
  });
  after(async () => {
    await revokedGrants?.stop();
    await backend.close();
    await gateway.close();
    await directory.close();
  });

  /** Signed exactly as the proxy signs what it forwards; a new grant id each time so the signer's cache is not hit. */
  async function assertion(route = '/mcp'): Promise<string> {
    const signer = createIdentityAssertionSigner({ keyring, issuer: publicUrl, clock: systemClock, random: cryptoRandom });
    const { jwt } = await signer.assertionFor({
      claims: { sub: subject, clientId: 'vscode', scopes: ['mcp:tools'], grantId: randomUUID(), jti: randomUUID(), exp: Math.floor(Date.now() / 1000) + 600 },
      account: { subject, issuer: 'https://idp.test', name: 'Alice Example', email: 'alice@example.test', groups: [], firstSeenAt: 0, lastSeenAt: 0 },
      audience: `${publicUrl}${route}`,
      ttlSeconds: 120,
    });
    return jwt;
  }

  it('GET /me and get_graph_user_details return the profile obtained through the gateway\'s /token', async () => {
    const response = await fetch(`${backend.url}/api/me`, { headers: { authorization: `Bearer ${await assertion('/graph')}` } });
    const profile = (await response.json()) as Record<string, unknown>;
    assert.equal(response.status, 200, JSON.stringify(profile));
    assert.equal(profile.displayName, 'Alice Example');
    assert.equal(upstream.calls.exchange.length, 1);
    assert.equal(upstream.calls.exchange[0]?.grant, 'on-behalf-of');
    const issued = (await metrics.registry.getMetricsAsJSON()).find((metric) => metric.name === 'gatehouse_tokens_issued_total');
    assert.equal(issued?.values.find((value) => value.labels.kind === 'token_exchange')?.value, 1, 'the RFC 8693 grant is counted');

    const client = new Client({ name: 'test', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${backend.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${await assertion()}` } } }));
    try {
      const result = (await client.callTool({ name: 'get_graph_user_details', arguments: {} })) as { structuredContent?: Record<string, unknown> };
      assert.equal(result.structuredContent?.id, 'alice-id');
    } finally {
      await client.close();
    }
    // The second assertion hit the broker's cache: still one exchange at the IdP.
    assert.equal(upstream.calls.exchange.length, 1);
  });

  it('checks a DPoP proof sent with an exchange (RFC 9449 §5) and answers Bearer, as the IdP token cannot be bound', async () => {
    const exchange = async (dpop: string) =>
      fetch(`${publicUrl}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop },
        body: new URLSearchParams({
          grant_type: TOKEN_EXCHANGE_GRANT,
          client_id: 'graph-server',
          client_secret: backendSecret,
          subject_token: await assertion(),
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          audience: 'graph',
        }),
      });
    const garbage = await exchange('garbage');
    assert.deepEqual([garbage.status, ((await garbage.json()) as { error: string }).error], [400, 'invalid_dpop_proof']);
    const key = await createDpopKey();
    const proof = await dpopProof(key, { htm: 'POST', htu: `${publicUrl}/token` });
    const valid = await exchange(proof);
    const body = (await valid.json()) as { token_type?: string; access_token?: string };
    assert.equal(valid.status, 200, JSON.stringify(body));
    assert.equal(body.token_type, 'Bearer');
    if (body.access_token) graphTokens.push(body.access_token);
    const replayed = await exchange(proof);
    assert.deepEqual([replayed.status, ((await replayed.json()) as { error: string }).error], [400, 'invalid_dpop_proof']);
  });

  it('keeps the downstream token out of the gateway\'s and the backend\'s logs', async () => {
    const logs = log.lines.join('') + gateway.logs.text();
    assert.ok(graphTokens.length > 0);
    for (const token of graphTokens) assert.ok(!logs.includes(token));
  });
});
