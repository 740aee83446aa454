import assert from 'node:assert/strict';
import { JWT_BEARER_GRANT } from '../../src/protocol/oauth-urns.ts';
import { after, before, describe, it } from 'node:test';
import { auth, Client, ClientCredentialsProvider, PrivateKeyJwtProvider, StreamableHTTPClientTransport, type OAuthClientProvider } from '@modelcontextprotocol/client';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { createDpopKey, dpopProof } from '../support/dpop.ts';
import type { TokenBroker } from '../../src/broker/types.ts';
import { mcpPost, toolsCall, toolsList } from '../proxy/harness.ts';
import { startTestStack, type TestStack } from '../proxy/stack-harness.ts';
import type { AuditRecord } from '../../src/records/audit.ts';
import { revokeClient } from '../../src/admin/clients.ts';

/**
 * Agents without a browser (MCP client-credentials extension): pre-registered confidential clients authenticate with
 * `private_key_jwt` or `client_secret_basic`, name the MCP server in `resource`, and get app-only tokens (`sub` = the
 * client) that the gateway accepts for that route only — with per-tool policy for app-only callers and a clear
 * refusal where a route acts on behalf of a user. Driven by the MCP TypeScript SDK's own client-credentials providers.
 */
const SECRET = 'a-long-enough-client-secret-for-tests';
let stack: TestStack;
let privateJwk: JWK;
let otherPrivateJwk: JWK;
/** The audit records the authorization server wrote (the gateway's audit log in production). */
const audited: AuditRecord[] = [];

/** The obo route must never reach the broker for an app-only caller. */
const unreachableBroker: TokenBroker = {
  getDownstreamToken: () => Promise.reject(new Error('the broker must not be asked for an app-only caller')),
};

before(async () => {
  const keys = await generateKeyPair('ES256', { extractable: true });
  const other = await generateKeyPair('ES256', { extractable: true });
  privateJwk = { ...(await exportJWK(keys.privateKey)), alg: 'ES256', kid: 'agent-key' };
  otherPrivateJwk = { ...(await exportJWK(other.privateKey)), alg: 'ES256', kid: 'agent-key' };
  const publicJwk = { ...(await exportJWK(keys.publicKey)), alg: 'ES256', kid: 'agent-key', use: 'sig' };
  stack = await startTestStack({
    authorization: {
      clients: [
        { clientId: 'nightly-agent', name: 'Nightly agent', jwks: { keys: [publicJwk] }, grantTypes: ['client_credentials'] },
        { clientId: 'report-bot', clientSecret: SECRET, grantTypes: ['client_credentials'] },
        { clientId: 'fresh-bot', clientSecret: SECRET, grantTypes: ['client_credentials'] },
      ],
    },
    routes: [
      { path: '/mcp', scopes: { 'mcp:tools': 'Use the tools' }, tools: { secret_tool: { appOnly: 'deny' } } },
      { path: '/graph', scopes: { 'mcp:tools': 'Use the tools' }, identity: { mode: 'obo', downstream: 'graph' } },
    ],
    extraConfig: { broker: { downstream: [{ name: 'graph', audience: 'https://graph.example.test', scopes: ['User.Read'] }] } },
    broker: unreachableBroker,
    deps: { recordAudit: (entry) => audited.push(entry) },
  });
});
after(async () => {
  await stack?.close();
});

/**
 * The SDK's own flow (PRM discovery, AS metadata, token request) against the public URL, then the MCP session
 * through the gateway replica with the provider's token.
 */
async function connect(provider: OAuthClientProvider, path = '/mcp'): Promise<Client> {
  assert.equal(await auth(provider, { serverUrl: `${stack.server.publicUrl}${path}` }), 'AUTHORIZED');
  const client = new Client({ name: 'agent', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.gateway.url + path), { authProvider: provider }));
  return client;
}

async function token(body: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${stack.server.publicUrl}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body).toString(),
  });
}

const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });
const whoami = async (client: Client) =>
  JSON.parse(((await client.callTool({ name: 'whoami', arguments: {} })) as { content: Array<{ text: string }> }).content[0]!.text) as Record<string, unknown>;

describe('client credentials: agents without a browser', () => {
  it('the SDK private_key_jwt provider gets an app-only token the gateway accepts; the backend is told there is no user', async () => {
    const provider = new PrivateKeyJwtProvider({ clientId: 'nightly-agent', privateKey: privateJwk, algorithm: 'ES256', expectedIssuer: stack.server.publicUrl });
    const client = await connect(provider);
    try {
      const who = await whoami(client);
      assert.equal(who.error, undefined, String(who.error));
      assert.equal(who.sub, 'nightly-agent');
      assert.equal(who.client_id, 'nightly-agent');
      assert.equal(who.app_only, true);
    } finally {
      await client.close();
    }
    const issued = provider.tokens()?.access_token ?? '';
    const claims = JSON.parse(Buffer.from(issued.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
    assert.equal(claims.aud, `${stack.server.publicUrl}/mcp`);
    assert.equal(claims.app_only, true);
    assert.equal(provider.tokens()?.refresh_token, undefined);
    // Recorded under its client with the MCP server it is for: the route its end is audited under.
    assert.deepEqual(await stack.server.store.get('app-only-token', String(claims.gid)), { clientId: 'nightly-agent', resource: `${stack.server.publicUrl}/mcp` });
  });

  it('the SDK client_secret_basic provider works too; an app-only caller does not see or call a tool denied to app-only callers', async () => {
    const client = await connect(new ClientCredentialsProvider({ clientId: 'report-bot', clientSecret: SECRET, expectedIssuer: stack.server.publicUrl }));
    try {
      const { tools } = await client.listTools();
      assert.ok(tools.some((tool) => tool.name === 'echo'));
      assert.ok(!tools.some((tool) => tool.name === 'secret_tool'), 'secret_tool is hidden from app-only callers');
    } finally {
      await client.close();
    }
    const issued = await token({ grant_type: 'client_credentials', resource: `${stack.server.publicUrl}/mcp`, scope: 'mcp:tools' }, basic('report-bot', SECRET));
    const { access_token: accessToken } = (await issued.json()) as { access_token: string };
    const refused = await mcpPost(`${stack.gateway.url}/mcp`, accessToken, toolsCall('secret_tool'));
    assert.equal(refused.status, 403);
    const body = JSON.stringify(await refused.json());
    assert.match(body, /app-only/);
  });

  it('refuses a client assertion signed with another key (invalid_client)', async () => {
    const provider = new PrivateKeyJwtProvider({ clientId: 'nightly-agent', privateKey: otherPrivateJwk, algorithm: 'ES256', expectedIssuer: stack.server.publicUrl });
    await assert.rejects(connect(provider), /invalid_client|Unauthorized|client authentication/i);
    const wrongSecret = await token({ grant_type: 'client_credentials', resource: `${stack.server.publicUrl}/mcp` }, basic('report-bot', 'not-the-secret-at-all-no'));
    assert.equal(wrongSecret.status, 401);
    assert.equal(((await wrongSecret.json()) as { error: string }).error, 'invalid_client');
  });

  it('records every client-credentials request in the audit log: issued (client, route), refused (why), failed authentication (no client)', async () => {
    // No person approved these tokens at a consent page: the audit trail is where an operator sees which agent got one.
    audited.length = 0;
    const resource = `${stack.server.publicUrl}/graph`;
    const issued = await token({ grant_type: 'client_credentials', resource, scope: 'mcp:tools' }, basic('report-bot', SECRET));
    assert.equal(issued.status, 200);
    const { access_token: accessToken } = (await issued.json()) as { access_token: string };
    assert.equal((await token({ grant_type: 'client_credentials', resource, scope: 'admin' }, basic('report-bot', SECRET))).status, 400);
    assert.equal((await token({ grant_type: 'client_credentials', resource }, basic('report-bot', 'not-the-secret-at-all-no'))).status, 401);
    assert.equal((await token({ grant_type: 'client_credentials' }, basic('report-bot', SECRET))).status, 400);
    // Another grant at the same endpoint is not this record's business.
    assert.equal((await token({ grant_type: 'refresh_token', refresh_token: 'nope' }, basic('report-bot', SECRET))).status, 400);
    assert.deepEqual(
      audited.map(({ user, client, route, method, outcome, status, reason }) => ({ user, client, route, method, outcome, status, reason })),
      [
        { user: undefined, client: 'report-bot', route: '/graph', method: 'client_credentials', outcome: 'allowed', status: 200, reason: undefined },
        { user: undefined, client: 'report-bot', route: '/graph', method: 'client_credentials', outcome: 'denied', status: 400, reason: 'invalid_scope' },
        { user: undefined, client: undefined, route: '/graph', method: 'client_credentials', outcome: 'denied', status: 401, reason: 'invalid_client' },
        { user: undefined, client: 'report-bot', route: '/token', method: 'client_credentials', outcome: 'denied', status: 400, reason: 'invalid_target' },
      ],
    );
    assert.ok(!JSON.stringify(audited).includes(accessToken), 'never the token');
    assert.ok(!JSON.stringify(audited).includes(SECRET), 'never the secret');
  });

  it('refuses a client assertion that expires more than a day ahead, was issued in the future, or names other audiences beside this server (invalid_client)', async () => {
    // Its replay record lives until `exp`: one years ahead held a record for ever on SQLite and was a 500 on Redis.
    const key = await importJWK(privateJwk, 'ES256');
    const now = Math.floor(Date.now() / 1000);
    const assertion = (claims: Record<string, unknown>) =>
      new SignJWT({ jti: randomUUID(), ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'agent-key' })
        .setIssuer('nightly-agent')
        .setSubject('nightly-agent')
        .setAudience((claims.aud as string | string[] | undefined) ?? `${stack.server.publicUrl}/token`)
        .sign(key);
    const present = async (claims: Record<string, unknown>) =>
      token({
        grant_type: 'client_credentials',
        resource: `${stack.server.publicUrl}/mcp`,
        client_id: 'nightly-agent',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(claims),
      });
    // Audience injection: an assertion signed for several servers at once is one any of them could present here.
    const injected = { exp: now + 300, iat: now, aud: [`${stack.server.publicUrl}/token`, 'https://other-server.example/token'] };
    for (const claims of [{ exp: 1e15, iat: now }, { exp: now + 2 * 86_400, iat: now }, { exp: now + 300, iat: now + 600 }, injected]) {
      const refused = await present(claims);
      assert.equal(refused.status, 401, JSON.stringify(claims));
      assert.equal(((await refused.json()) as { error: string }).error, 'invalid_client');
    }
    // Several names of this server are one audience (openid-client 5 sends the issuer and the token endpoint).
    for (const aud of [undefined, stack.server.publicUrl, [`${stack.server.publicUrl}/token`], [stack.server.publicUrl, `${stack.server.publicUrl}/token`]]) {
      const accepted = await present({ exp: now + 300, iat: now, ...(aud === undefined ? {} : { aud }) });
      assert.equal(accepted.status, 200, await accepted.clone().text());
      await accepted.body?.cancel();
    }
  });

  it('answers a scope the MCP server does not offer with invalid_scope, and gives a request naming none the required scopes', async () => {
    // oidc-provider dropped unknown scopes and issued a token with none, which every call then refused.
    const resource = `${stack.server.publicUrl}/mcp`;
    const unnamed = await token({ grant_type: 'client_credentials', resource }, basic('report-bot', SECRET));
    assert.equal(unnamed.status, 200);
    assert.equal(((await unnamed.json()) as { scope: string }).scope, 'mcp:tools');
    for (const scope of ['admin', 'mcp:tools admin']) {
      const response = await token({ grant_type: 'client_credentials', resource, ...(scope === undefined ? {} : { scope }) }, basic('report-bot', SECRET));
      assert.equal(response.status, 400, String(scope));
      const body = (await response.json()) as { error: string; error_description: string };
      assert.equal(body.error, 'invalid_scope', String(scope));
      assert.match(body.error_description, /admin: not a scope of this MCP server \(it offers mcp:tools\)/);
    }
    const habit = await token({ grant_type: 'client_credentials', resource, scope: 'openid mcp:tools' }, basic('report-bot', SECRET));
    assert.equal(habit.status, 200, 'an OpenID Connect scope sent by habit is not refused');
    await habit.body?.cancel();
    // Only OpenID Connect's scopes name none of the server's: the required ones, not a token with no scope at all.
    const onlyOidc = await token({ grant_type: 'client_credentials', resource, scope: 'openid offline_access' }, basic('report-bot', SECRET));
    assert.equal(onlyOidc.status, 200);
    assert.equal(((await onlyOidc.json()) as { scope?: string }).scope, 'mcp:tools');
    const granted = await token({ grant_type: 'client_credentials', resource, scope: 'mcp:tools' }, basic('report-bot', SECRET));
    assert.equal(granted.status, 200);
    assert.equal(((await granted.json()) as { scope: string }).scope, 'mcp:tools');
  });

  it('answers a replayed DPoP proof invalid_dpop_proof (RFC 9449 §5), not invalid_grant', async () => {
    const key = await createDpopKey();
    const proof = await dpopProof(key, { htm: 'POST', htu: `${stack.server.publicUrl}/token` });
    const request = () => token({ grant_type: 'client_credentials', resource: `${stack.server.publicUrl}/mcp` }, { ...basic('report-bot', SECRET), dpop: proof });
    const first = await request();
    assert.equal(first.status, 200, await first.clone().text());
    assert.equal(((await first.json()) as { token_type: string }).token_type, 'DPoP');
    const replay = await request();
    assert.equal(replay.status, 400);
    assert.equal(((await replay.json()) as { error: string }).error, 'invalid_dpop_proof');
  });

  it("keeps a DPoP proof's replay record for as long as the proof is accepted, also for one dated ahead of the clock", async () => {
    // oidc-provider accepts a proof until its `iat` + 300 s but gave the record `now` + 300 s: a proof dated 295 s
    // ahead could be used once more in the ≈ 5 minutes between.
    const key = await createDpopKey();
    const iat = Math.floor(Date.now() / 1000) + 295;
    const proof = await dpopProof(key, { htm: 'POST', htu: `${stack.server.publicUrl}/token`, iat });
    const issued = await token({ grant_type: 'client_credentials', resource: `${stack.server.publicUrl}/mcp` }, { ...basic('report-bot', SECRET), dpop: proof });
    assert.equal(issued.status, 200, await issued.clone().text());
    const records = await stack.server.store.list('oidc:ReplayDetection');
    const longest = Math.max(...records.map((record) => record.expiresAt ?? 0));
    assert.ok(longest >= (iat + 300) * 1000, `the record lives until ${new Date(longest).toISOString()}, the proof is accepted until ${new Date((iat + 300) * 1000).toISOString()}`);
  });

  it('answers a flood of wrong secrets for a configured client 401 or 503 (never 500), and still serves the client that knows its secret', async () => {
    // A client id is no secret, and each wrong secret for a configured client cost a scrypt derivation: the checks now
    // run one at a time with a few waiting, the rest answered 503, and a secret already proved skips the queue.
    const resource = `${stack.server.publicUrl}/mcp`;
    assert.equal((await token({ grant_type: 'client_credentials', resource }, basic('report-bot', SECRET))).status, 200);
    const flood = Array.from({ length: 16 }, (_, index) => token({ grant_type: 'client_credentials', resource }, basic('report-bot', `wrong-secret-number-${index}`)));
    const rightful = await token({ grant_type: 'client_credentials', resource }, basic('report-bot', SECRET));
    assert.equal(rightful.status, 200, await rightful.clone().text());
    const answers = await Promise.all(flood);
    const statuses = answers.map((answer) => answer.status);
    assert.ok(statuses.every((status) => status === 401 || status === 503), statuses.join(' '));
    assert.ok(statuses.includes(503), statuses.join(' '));
    for (const answer of answers.filter((response) => response.status === 503)) {
      assert.ok(Number(answer.headers.get('retry-after')) >= 1);
      assert.equal(((await answer.json()) as { error: string }).error, 'temporarily_unavailable');
    }
  });

  it('serves a client whose secret this process never checked through a flood of wrong secrets from another address', async () => {
    // Checks wait per client and per address: with one queue per client, a flood from anywhere kept a client this
    // replica had not yet verified (a fresh replica, after every restart) at 503 for as long as it went on.
    const resource = `${stack.server.publicUrl}/mcp`;
    let flooding = true;
    const flooders = Array.from({ length: 10 }, async (_, worker) => {
      for (let sent = 0; flooding; sent++) await (await token({ grant_type: 'client_credentials', resource }, basic('fresh-bot', `wrong-${worker}-${sent}`))).body?.cancel();
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      // The rightful client, from another address (127.0.0.2: all of 127/8 is this machine's loopback).
      const body = new URLSearchParams({ grant_type: 'client_credentials', resource }).toString();
      const rightful = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const { hostname, port } = new URL(stack.server.publicUrl);
        const headers = { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)), ...basic('fresh-bot', SECRET) };
        const sent = request({ host: hostname, port, path: '/token', method: 'POST', headers, localAddress: '127.0.0.2' }, (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk.toString()));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
        });
        sent.on('error', reject);
        sent.end(body);
      });
      assert.equal(rightful.status, 200, rightful.text);
    } finally {
      flooding = false;
      await Promise.all(flooders);
    }
  });

  it('requires `resource`, and only a route of this gateway (invalid_target)', async () => {
    for (const resource of [undefined, 'https://elsewhere.example/mcp', `${stack.server.publicUrl}/not-a-route`]) {
      const response = await token({ grant_type: 'client_credentials', scope: 'mcp:tools', ...(resource === undefined ? {} : { resource }) }, basic('report-bot', SECRET));
      assert.equal(response.status, 400, String(resource));
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_target', String(resource));
    }
  });

  it('answers two resources invalid_target (a token is for one server), with a scope or without', async () => {
    for (const scope of ['', '&scope=mcp:tools', '&scope=other']) {
      const body = `grant_type=client_credentials&resource=${encodeURIComponent(`${stack.server.publicUrl}/mcp`)}&resource=${encodeURIComponent(`${stack.server.publicUrl}/graph`)}${scope}`;
      const response = await fetch(`${stack.server.publicUrl}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic('report-bot', SECRET) }, body });
      assert.equal(response.status, 400, scope);
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_target', scope);
    }
  });

  it('a token for one route is refused at another; an app-only caller on an on-behalf-of route gets a clear 403', async () => {
    const issued = await token({ grant_type: 'client_credentials', resource: `${stack.server.publicUrl}/mcp`, scope: 'mcp:tools' }, basic('report-bot', SECRET));
    const { access_token: forMcp } = (await issued.json()) as { access_token: string };
    assert.equal((await mcpPost(`${stack.gateway.url}/graph`, forMcp, toolsList())).status, 401);

    const graph = await token({ grant_type: 'client_credentials', resource: `${stack.server.publicUrl}/graph`, scope: 'mcp:tools' }, basic('report-bot', SECRET));
    const { access_token: forGraph } = (await graph.json()) as { access_token: string };
    const refused = await mcpPost(`${stack.gateway.url}/graph`, forGraph, toolsList());
    assert.equal(refused.status, 403);
    const text = await refused.text();
    assert.match(text, /on behalf of a signed-in user/);
    assert.match(text, /app-only/);
    assert.ok(!text.includes(forGraph));
  });

  it('a client registered without the grant cannot use it; RFC 7009 revocation cuts an app-only token off', async () => {
    const registered = await fetch(`${stack.server.publicUrl}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none' }),
    });
    const { client_id: publicClient } = (await registered.json()) as { client_id: string };
    const denied = await token({ grant_type: 'client_credentials', client_id: publicClient, resource: `${stack.server.publicUrl}/mcp` });
    assert.equal(denied.status, 400);
    // oidc-provider's answer for a grant type the client did not register (RFC 6749 would say unauthorized_client).
    assert.deepEqual(await denied.json(), { error: 'invalid_request', error_description: 'requested grant type is not allowed for this client' });

    const issued = await token({ grant_type: 'client_credentials', resource: `${stack.server.publicUrl}/mcp`, scope: 'mcp:tools' }, basic('report-bot', SECRET));
    const { access_token: accessToken } = (await issued.json()) as { access_token: string };
    assert.equal((await mcpPost(`${stack.gateway.url}/mcp`, accessToken, toolsList())).status, 200);
    const revoked = await fetch(`${stack.server.publicUrl}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic('report-bot', SECRET) },
      body: new URLSearchParams({ token: accessToken }).toString(),
    });
    assert.equal(revoked.status, 200);
    await stack.gateway.revokedGrants.resync();
    assert.equal((await mcpPost(`${stack.gateway.url}/mcp`, accessToken, toolsList())).status, 401);
  });

  it('revoking the client (console, CLI) ends its app-only tokens on every replica, which have no grant to find them by', async () => {
    const mint = async () => {
      const issued = await token({ grant_type: 'client_credentials', resource: `${stack.server.publicUrl}/mcp`, scope: 'mcp:tools' }, basic('report-bot', SECRET));
      return ((await issued.json()) as { access_token: string }).access_token;
    };
    const tokens = [await mint(), await mint()];
    for (const accessToken of tokens) assert.equal((await mcpPost(`${stack.gateway.url}/mcp`, accessToken, toolsList())).status, 200);
    const deps = { store: stack.server.store, clock: stack.server.ctx.clock, config: stack.server.ctx.config };
    const result = await revokeClient(deps, 'report-bot');
    assert.equal(result.revokedAppOnlyTokens.length >= 2, true, `ended ${result.revokedAppOnlyTokens.length} app-only tokens`);
    await stack.gateway.revokedGrants.resync();
    for (const accessToken of tokens) assert.equal((await mcpPost(`${stack.gateway.url}/mcp`, accessToken, toolsList())).status, 401);
    // A configured client may ask again (the operator removes it from the configuration to stop that); what it gets works.
    assert.equal((await mcpPost(`${stack.gateway.url}/mcp`, await mint(), toolsList())).status, 200);
    assert.deepEqual((await revokeClient(deps, 'report-bot')).revokedAppOnlyTokens.length, 1, 'a second revocation ends only the new token');
  });

  it('a client registering itself (DCR) cannot give itself the grant: anyone could then mint app-only tokens', async () => {
    for (const grantTypes of [['client_credentials'], ['authorization_code', 'refresh_token', 'client_credentials'], [JWT_BEARER_GRANT]]) {
      const registered = await fetch(`${stack.server.publicUrl}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:9/cb'], grant_types: grantTypes, response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' }),
      });
      const answer = (await registered.json()) as { client_id?: string; client_secret?: string; error?: string };
      if (registered.status === 201) {
        const issued = await token({ grant_type: 'client_credentials', resource: `${stack.server.publicUrl}/mcp`, scope: 'mcp:tools' }, basic(answer.client_id!, answer.client_secret!));
        assert.notEqual(issued.status, 200, `${grantTypes.join(',')}: ${await issued.text()}`);
      }
      assert.deepEqual([registered.status, answer.error], [400, 'invalid_client_metadata'], grantTypes.join(','));
    }
  });

  it('advertises what the extension requires in the AS metadata', async () => {
    const metadata = (await (await fetch(`${stack.server.publicUrl}/.well-known/oauth-authorization-server`)).json()) as Record<string, string[]>;
    assert.ok(metadata.grant_types_supported?.includes('client_credentials'));
    assert.ok(metadata.token_endpoint_auth_methods_supported?.includes('private_key_jwt'));
    assert.ok(metadata.token_endpoint_auth_methods_supported?.includes('client_secret_basic'));
    assert.ok((metadata.token_endpoint_auth_signing_alg_values_supported?.length ?? 0) > 0);
  });
});
