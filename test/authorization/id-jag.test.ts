import assert from 'node:assert/strict';
import { createDpopKey, dpopProof } from '../support/dpop.ts';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { listGrants, revokeGrantById } from '../../src/admin/grants.ts';
import { ID_JAG_GRANT_PROFILE, ID_JAG_TYP, JWT_BEARER_GRANT } from '../../src/protocol/oauth-urns.ts';
import { mcpPost, rpcBody, toolsCall, toolsList } from '../proxy/harness.ts';
import { startTestStack, type TestStack } from '../proxy/stack-harness.ts';
import type { AuditRecord } from '../../src/records/audit.ts';
import { oidcRecords } from '../../src/store/oidc-records.ts';
import { findRecords } from '../../src/store/record-access.ts';
import { startTestTokenIssuer, unsignedJwt, type TestTokenIssuer } from '../support/test-token-issuer.ts';
import { withNamespaceOutage } from '../support/namespace-outage.ts';

/**
 * Enterprise-Managed Authorization (MCP extension; draft-ietf-oauth-identity-assertion-authz-grant): a client
 * presents an ID-JAG from a configured enterprise IdP with the RFC 7523 jwt-bearer grant and gets an access token for
 * the MCP server the assertion names, through the gateway. The IdP here publishes discovery and a JWKS on a loopback
 * port (fetched for real); each bad-input test changes one thing about an otherwise valid assertion.
 */
const SECRET = 'chat-client-secret-for-tests';
let idp: TestTokenIssuer;
let stranger: TestTokenIssuer;
let stack: TestStack;
let mcp: string;
const audited: AuditRecord[] = [];

before(async () => {
  idp = await startTestTokenIssuer({ typ: ID_JAG_TYP });
  stranger = await startTestTokenIssuer({ typ: ID_JAG_TYP });
  stack = await startTestStack({
    authorization: {
      clients: [
        { clientId: 'chat-client', clientSecret: SECRET, grantTypes: [JWT_BEARER_GRANT] },
        { clientId: 'other-client', clientSecret: SECRET, grantTypes: [JWT_BEARER_GRANT] },
        { clientId: 'unlisted-client', clientSecret: SECRET, grantTypes: [JWT_BEARER_GRANT] },
      ],
      enterpriseIdps: [{ issuer: idp.issuer, clients: ['chat-client', 'other-client'], scopes: ['mcp:tools', 'mcp:read'] }],
    },
    routes: [
      { path: '/mcp', scopes: { 'mcp:tools': 'Use the tools', 'mcp:read': 'Read', 'mcp:admin': 'Administer' } },
      { path: '/bound', scopes: { 'mcp:tools': 'Use the tools', 'mcp:read': 'Read' }, dpop: 'required' },
    ],
    deps: { recordAudit: (entry) => audited.push(entry) },
  });
  mcp = `${stack.server.publicUrl}/mcp`;
});
after(async () => {
  await stack?.close();
  await idp?.close();
  await stranger?.close();
});

const basic = (id: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${SECRET}`).toString('base64')}` });

/** The claims of a valid ID-JAG for chat-client and the MCP route; a test overrides one. */
const claims = (overrides: Record<string, unknown> = {}) => ({
  sub: 'alice',
  aud: stack.server.publicUrl,
  client_id: 'chat-client',
  resource: mcp,
  scope: 'mcp:tools mcp:read',
  email: 'alice@enterprise.example',
  ...overrides,
});

async function present(assertion: string, options: { client?: string; scope?: string; resource?: string; url?: string; dpop?: string } = {}) {
  const response = await fetch(`${options.url ?? stack.server.publicUrl}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...basic(options.client ?? 'chat-client'),
      ...(options.dpop === undefined ? {} : { dpop: options.dpop }),
    },
    body: new URLSearchParams({
      grant_type: JWT_BEARER_GRANT,
      assertion,
      ...(options.scope === undefined ? {} : { scope: options.scope }),
      ...(options.resource === undefined ? {} : { resource: options.resource }),
    }).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

async function refused(assertion: string, error: string, options: Parameters<typeof present>[1] = {}) {
  const { status, body } = await present(assertion, options);
  assert.equal(status, error === 'invalid_client' ? 401 : 400, JSON.stringify(body));
  assert.equal(body.error, error, JSON.stringify(body));
  assert.ok(!JSON.stringify(body).includes(assertion), 'the answer never quotes the assertion');
  return body;
}

describe('ID-JAG: enterprise-managed authorization', () => {
  it('exchanges an ID-JAG for a token the gateway accepts; the grant shows in the admin console and /account and is revocable', async () => {
    const { status, body } = await present(await idp.sign(claims()));
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.scope, 'mcp:tools mcp:read');
    assert.equal(body.refresh_token, undefined);
    const token = body.access_token!;
    const whoami = await mcpPost(`${stack.gateway.url}/mcp`, token, toolsCall('whoami'));
    assert.equal(whoami.status, 200);
    const who = JSON.parse((await rpcBody<{ result: { content: Array<{ text: string }> } }>(whoami)).result.content[0]!.text) as Record<string, unknown>;
    assert.equal(who.sub, `${idp.issuer}#alice`);
    assert.equal(who.client_id, 'chat-client');
    assert.equal(who.email, 'alice@enterprise.example');
    assert.equal(who.app_only, undefined);

    const deps = { store: stack.server.store, clock: stack.server.ctx.clock, config: stack.server.ctx.config };
    const grants = await listGrants(deps, { user: `${idp.issuer}#alice` });
    assert.equal(grants.length, 1);
    assert.deepEqual(grants[0]!.resources, [mcp]);
    assert.deepEqual(grants[0]!.scopes, ['mcp:read', 'mcp:tools']);
    // /account revokes the user's own grant the same way (subject-restricted).
    await revokeGrantById(deps, grants[0]!.grantId, { subject: `${idp.issuer}#alice` });
    await stack.gateway.revokedGrants.resync();
    assert.equal((await mcpPost(`${stack.gateway.url}/mcp`, token, toolsList())).status, 401);
  });

  it('leaves a grant that ends with its token, not one living as long as a refresh-token chain', async () => {
    const { status, body } = await present(await idp.sign(claims({ sub: 'short-lived' })));
    assert.equal(status, 200, JSON.stringify(body));
    const tokenExp = (JSON.parse(Buffer.from(body.access_token!.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number }).exp;
    const deps = { store: stack.server.store, clock: stack.server.ctx.clock, config: stack.server.ctx.config };
    const [listed] = await listGrants(deps, { user: `${idp.issuer}#short-lived` });
    assert.ok(listed?.expiresAt !== undefined && listed.createdAt !== undefined);
    assert.equal(listed.expiresAt - listed.createdAt, stack.server.ctx.config.authorization.accessTokenTtlSeconds * 1000);
    // Saved just before the token is signed: the same second, or the one before.
    assert.ok(tokenExp * 1000 - listed.expiresAt <= 1000, `grant ends ${listed.expiresAt}, its token ${tokenExp * 1000}`);
    // The store forgets the record (and its index rows) then too, not 90 days later.
    const [stored] = await findRecords(stack.server.store, oidcRecords.Grant, 'accountId', `${idp.issuer}#short-lived`);
    assert.ok(stored?.expiresAt !== undefined && stored.expiresAt <= tokenExp * 1000 + 1000, `stored until ${stored?.expiresAt}`);
  });

  it('records each ID-JAG presented in the audit log: for whom, which client, which MCP server, or why it was refused', async () => {
    audited.length = 0;
    const accepted = await idp.sign(claims({ sub: 'audited' }));
    assert.equal((await present(accepted)).status, 200);
    await refused(await idp.sign(claims({ sub: 'audited', client_id: 'other-client' })), 'invalid_grant');
    await refused(await stranger.sign(claims()), 'invalid_grant');
    const summary = audited.map(({ user, client, route, method, outcome, status, reason }) => ({ user, client, route, method, outcome, status, reason }));
    assert.deepEqual(summary, [
      { user: `${idp.issuer}#audited`, client: 'chat-client', route: '/mcp', method: 'jwt-bearer id-jag', outcome: 'allowed', status: 200, reason: undefined },
      // Signed by the IdP for another client: whom it named is known, the server it was for is not checked yet.
      { user: `${idp.issuer}#audited`, client: 'chat-client', route: '/token', method: 'jwt-bearer id-jag', outcome: 'denied', status: 400, reason: 'invalid_grant' },
      // Not signed by a trusted IdP: nothing it claims is believed.
      { user: undefined, client: 'chat-client', route: '/token', method: 'jwt-bearer id-jag', outcome: 'denied', status: 400, reason: 'invalid_grant' },
    ]);
    assert.ok(!JSON.stringify(audited).includes(accepted.split('.')[1]!), 'never the assertion');
  });

  it('advertises the grant type and the ID-JAG grant profile', async () => {
    const metadata = (await (await fetch(`${stack.server.publicUrl}/.well-known/oauth-authorization-server`)).json()) as Record<string, string[]>;
    assert.ok(metadata.grant_types_supported?.includes(JWT_BEARER_GRANT));
    assert.deepEqual(metadata.authorization_grant_profiles_supported, [ID_JAG_GRANT_PROFILE]);
  });

  it('grants the intersection of requested, asserted and capped scopes; a request beyond them never widens it', async () => {
    const escalated = await present(await idp.sign(claims({ scope: 'mcp:tools mcp:admin' })), { scope: 'mcp:tools mcp:admin' });
    assert.equal(escalated.status, 200);
    assert.equal(escalated.body.scope, 'mcp:tools', 'mcp:admin is above the IdP cap');
    const beyondAssertion = await present(await idp.sign(claims({ scope: 'mcp:tools' })), { scope: 'mcp:tools mcp:read' });
    assert.equal(beyondAssertion.body.scope, 'mcp:tools');
    await refused(await idp.sign(claims({ scope: 'mcp:tools' })), 'invalid_scope', { scope: 'mcp:admin' });
    // OpenID Connect's scopes alone name none: the assertion's, as with no `scope`, not invalid_scope.
    const habit = await present(await idp.sign(claims()), { scope: 'openid offline_access' });
    assert.deepEqual([habit.status, habit.body.scope], [200, 'mcp:tools mcp:read'], JSON.stringify(habit.body));
  });

  it('binds the token to the key of a DPoP proof sent with the ID-JAG (RFC 9449 §5)', async () => {
    const key = await createDpopKey();
    const bound = await present(await idp.sign(claims()), { dpop: await dpopProof(key, { htm: 'POST', htu: `${stack.server.publicUrl}/token` }) });
    assert.equal(bound.status, 200, JSON.stringify(bound.body));
    assert.equal(bound.body.token_type, 'DPoP');
    const payload = JSON.parse(Buffer.from(bound.body.access_token!.split('.')[1]!, 'base64url').toString('utf8')) as { cnf?: unknown };
    assert.deepEqual(payload.cnf, { jkt: key.jkt });
    const garbage = await present(await idp.sign(claims()), { dpop: 'not-a-proof' });
    assert.deepEqual([garbage.status, garbage.body.error], [400, 'invalid_dpop_proof']);
  });

  it('refuses one without a proof for a route that takes only DPoP-bound tokens, rather than issue a Bearer token it refuses', async () => {
    const assertion = await idp.sign(claims({ resource: `${stack.server.publicUrl}/bound` }));
    const body = await refused(assertion, 'invalid_request');
    assert.match(body.error_description ?? '', /only DPoP-bound access tokens/);
    // Refused before its jti was spent: the same assertion with a proof gets the token.
    const key = await createDpopKey();
    const issued = await present(assertion, { dpop: await dpopProof(key, { htm: 'POST', htu: `${stack.server.publicUrl}/token` }) });
    assert.deepEqual([issued.status, issued.body.token_type], [200, 'DPoP'], JSON.stringify(issued.body));
  });

  it('refuses a replayed jti', async () => {
    const assertion = await idp.sign(claims());
    assert.equal((await present(assertion)).status, 200);
    await refused(assertion, 'invalid_grant');
  });

  it('answers a store outage 503 temporarily_unavailable with Retry-After (never 500), at each write; the assertion is not used up', async () => {
    // The replay record (`assertion-jti`), the account record, and the grant oidc-provider saves (its access token is a
    // JWT, not stored).
    for (const namespace of ['assertion-jti', 'account', 'oidc:Grant']) {
      const assertion = await idp.sign(claims({ sub: `outage-${namespace}` }));
      const response = await withNamespaceOutage(stack.server.store, namespace, () =>
        fetch(`${stack.server.publicUrl}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic('chat-client') },
          body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString(),
        }),
      );
      assert.equal(response.status, 503, namespace);
      assert.equal(((await response.json()) as { error: string }).error, 'temporarily_unavailable');
      assert.ok(Number(response.headers.get('retry-after')) >= 1, namespace);
      assert.equal((await present(assertion)).status, 200, `${namespace}: the client retries the same assertion after the outage`);
    }
  });

  it('holds the user id, name and address to the bounds of a sign-in: no 300-character or control-character sub, a name cut, no over-long address', async () => {
    const body = await refused(await idp.sign(claims({ sub: 'u'.repeat(300) })), 'invalid_grant');
    assert.ok(!JSON.stringify(body).includes('u'.repeat(100)), 'the answer does not quote the id');
    await refused(await idp.sign(claims({ sub: 'alice\r\nmallory' })), 'invalid_grant');
    const { status, body: issued } = await present(await idp.sign(claims({ sub: 'long-profile', name: 'N'.repeat(1_000), email: `${'e'.repeat(300)}@enterprise.example` })));
    assert.equal(status, 200, JSON.stringify(issued));
    const whoami = await mcpPost(`${stack.gateway.url}/mcp`, issued.access_token!, toolsCall('whoami'));
    const who = JSON.parse((await rpcBody<{ result: { content: Array<{ text: string }> } }>(whoami)).result.content[0]!.text) as Record<string, unknown>;
    assert.equal(String(who.name).length, 256, 'the name is cut as at sign-in');
    assert.equal(who.email, undefined, 'longer than any address can be');
  });

  it('refuses a wrong aud, an unknown issuer, an expired or future assertion, a wrong typ', async () => {
    await refused(await idp.sign(claims({ aud: 'https://another-as.example' })), 'invalid_grant');
    await refused(await stranger.sign(claims()), 'invalid_grant');
    const now = Math.floor(Date.now() / 1000);
    const expired = await refused(await idp.sign(claims({ iat: now - 900, exp: now - 600 })), 'invalid_grant');
    assert.match(expired.error_description ?? '', /expired/);
    await refused(await idp.sign(claims({ iat: now + 600, exp: now + 900 })), 'invalid_grant');
    await refused(await idp.sign(claims(), { header: { typ: 'JWT' } }), 'invalid_grant');
  });

  it('reads `typ` as a media type: `application/oauth-id-jag+jwt` in any case is an ID-JAG too (RFC 7515 §4.1.9)', async () => {
    for (const typ of ['application/oauth-id-jag+jwt', 'Application/OAUTH-ID-JAG+JWT']) {
      const { status, body } = await present(await idp.sign(claims(), { header: { typ } }));
      assert.equal(status, 200, `${typ}: ${JSON.stringify(body)}`);
    }
  });

  it('refuses HS256 and alg none', async () => {
    await refused(await idp.sign(claims(), { alg: 'HS256', key: new TextEncoder().encode('a-shared-secret-of-32-bytes-long!') }), 'invalid_grant');
    await refused(unsignedJwt({ typ: ID_JAG_TYP }, { ...claims(), iss: idp.issuer, jti: 'unsigned', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 300 }), 'invalid_grant');
  });

  it('never trusts a key the assertion brings along (jwk, jku, x5u headers), nor a kid of another issuer', async () => {
    const attacker = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(attacker.publicKey)), alg: 'ES256', kid: 'issuer-key-1' };
    const header = { jwk, jku: `${stranger.issuer}/jwks`, x5u: `${stranger.issuer}/jwks`, kid: 'issuer-key-1' };
    await refused(await idp.sign(claims(), { header, key: attacker.privateKey }), 'invalid_grant');
    // The stranger's key has the same kid as the IdP's: a kid picks among the trusted keys only.
    await refused(await stranger.sign({ ...claims(), iss: idp.issuer }), 'invalid_grant');
  });

  it('refuses a resource that is not a route, and another resource than the assertion names', async () => {
    await refused(await idp.sign(claims({ resource: `${stack.server.publicUrl}/elsewhere` })), 'invalid_grant');
    await refused(await idp.sign(claims()), 'invalid_target', { resource: `${stack.server.publicUrl}/elsewhere` });
  });

  it("refuses another client's assertion, and a client the IdP entry does not list", async () => {
    const body = await refused(await idp.sign(claims({ client_id: 'other-client' })), 'invalid_grant');
    assert.match(body.error_description ?? '', /another client/);
    await refused(await idp.sign(claims({ client_id: 'unlisted-client' })), 'invalid_grant', { client: 'unlisted-client' });
  });

  it('an IdP naming a client that is missing, not allowed the grant, or public is a configuration error', async () => {
    const { enterpriseClientProblems } = await import('../../src/authorization/grants/jwt-bearer-grant.ts');
    const { configSchema } = await import('../../src/config/schema.ts');
    const { authorization } = configSchema.parse({
      authorization: {
        clients: [
          { clientId: 'no-grant', clientSecret: SECRET },
          // A public client's ID-JAG is a bearer token: whoever holds it (a log, a proxy) gets the user's access.
          { clientId: 'public', grantTypes: [JWT_BEARER_GRANT] },
          { clientId: 'fine', clientSecret: SECRET, grantTypes: [JWT_BEARER_GRANT] },
        ],
        enterpriseIdps: [{ issuer: 'https://idp.example', clients: ['missing', 'no-grant', 'public', 'fine'] }],
      },
    });
    const problems = enterpriseClientProblems(authorization);
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.match(problems.join('\n'), /"missing" is not in authorization.clients/);
    assert.match(problems.join('\n'), /"public" .*clientSecret or jwks/);
  });

  it('never logs an assertion', async () => {
    const assertion = await idp.sign(claims({ aud: 'https://another-as.example' }));
    await refused(assertion, 'invalid_grant');
    assert.ok(!stack.server.logs.text().includes(assertion.split('.')[1]!));
    assert.match(stack.server.logs.text(), /jwt-bearer grant refused/);
  });
});

describe('ID-JAG beside workload identities', () => {
  let both: TestStack;
  before(async () => {
    both = await startTestStack({
      authorization: {
        clients: [
          { clientId: 'chat-client', clientSecret: SECRET, grantTypes: [JWT_BEARER_GRANT] },
          { clientId: 'k8s-agent', grantTypes: [JWT_BEARER_GRANT] },
        ],
        enterpriseIdps: [{ issuer: idp.issuer, clients: ['chat-client'], scopes: ['mcp:tools'] }],
        workloadIdentities: [{ issuer: 'https://workload.example', rules: [{ subject: 'system:serviceaccount:*', clientId: 'k8s-agent', scopes: ['mcp:tools'] }] }],
      },
      routes: [{ path: '/mcp', scopes: { 'mcp:tools': 'Use the tools' } }],
    });
  });
  after(async () => {
    await both?.close();
  });

  it("refuses an enterprise IdP's assertion with the wrong typ in the ID-JAG's words, not as an untrusted workload issuer", async () => {
    const publicUrl = both.server.publicUrl;
    const assertion = await idp.sign({ sub: 'alice', aud: publicUrl, client_id: 'chat-client', resource: `${publicUrl}/mcp`, scope: 'mcp:tools' }, { header: { typ: 'JWT' } });
    const { status, body } = await present(assertion, { url: publicUrl });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_grant');
    assert.match(body.error_description ?? '', /not an ID-JAG \(typ/);
  });
});
