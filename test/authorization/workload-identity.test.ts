import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startWorkloadIdentityIssuer, type WorkloadIdentityIssuer } from '../../src/demo/workload-identity/workload-identity-issuer.ts';
import { JWT_BEARER_GRANT } from '../../src/protocol/oauth-urns.ts';
import { mcpPost, rpcBody, toolsCall } from '../proxy/harness.ts';
import { startTestStack, type TestStack } from '../proxy/stack-harness.ts';
import type { AuditRecord } from '../../src/records/audit.ts';
import { startTestTokenIssuer, type TestTokenIssuer } from '../support/test-token-issuer.ts';
import { createDpopKey, dpopProof } from '../support/dpop.ts';
import { withNamespaceOutage } from '../support/namespace-outage.ts';

/**
 * Workload identity federation (MCP extension, SEP-1933): a workload presents its platform's JWT with the jwt-bearer
 * grant and no client credentials, and gets an app-only token for the MCP route it names. Real JWTs: a Kubernetes
 * service-account token from the demo's workload-identity issuer (nested `kubernetes.io` claims) and a GitHub
 * Actions-shaped token (`repository`, `ref`) from a loopback issuer; both publish discovery and a JWKS that Gatehouse
 * fetches.
 */
let cluster: WorkloadIdentityIssuer;
let github: TestTokenIssuer;
let untrusted: TestTokenIssuer;
let stack: TestStack;
let tokenEndpoint: string;
let mcp: string;
const audited: AuditRecord[] = [];

before(async () => {
  cluster = await startWorkloadIdentityIssuer({ subject: 'system:serviceaccount:gatehouse:nightly' });
  github = await startTestTokenIssuer();
  untrusted = await startTestTokenIssuer();
  stack = await startTestStack({
    authorization: {
      clients: [
        { clientId: 'k8s-agent', grantTypes: [JWT_BEARER_GRANT] },
        { clientId: 'ci-deployer', grantTypes: [JWT_BEARER_GRANT] },
      ],
      workloadIdentities: [
        {
          issuer: cluster.issuer,
          rules: [{ subject: 'system:serviceaccount:gatehouse:*', claims: { 'kubernetes.io/namespace': 'gatehouse' }, clientId: 'k8s-agent', scopes: ['mcp:tools'] }],
        },
        {
          issuer: github.issuer,
          rules: [{ subject: 'repo:acme/deploy:*', claims: { repository: 'acme/deploy', ref: 'refs/heads/main' }, clientId: 'ci-deployer', scopes: ['mcp:tools', 'mcp:read'] }],
        },
      ],
    },
    routes: [{ path: '/mcp', scopes: { 'mcp:tools': 'Use the tools', 'mcp:read': 'Read', 'mcp:admin': 'Administer' } }],
    deps: { recordAudit: (entry) => audited.push(entry) },
  });
  tokenEndpoint = `${stack.server.publicUrl}/token`;
  mcp = `${stack.server.publicUrl}/mcp`;
});
after(async () => {
  await stack?.close();
  await cluster?.close();
  await github?.close();
  await untrusted?.close();
});

async function present(assertion: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}) {
  const response = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion, resource: mcp, ...extra }).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

async function refused(assertion: string, error: string, extra: Record<string, string> = {}) {
  const { status, body } = await present(assertion, extra);
  assert.deepEqual([status, body.error], [400, error], JSON.stringify(body));
  assert.ok(!JSON.stringify(body).includes(assertion));
  return body;
}

const githubToken = (claims: Record<string, unknown> = {}) =>
  github.sign({ sub: 'repo:acme/deploy:ref:refs/heads/main', aud: tokenEndpoint, repository: 'acme/deploy', ref: 'refs/heads/main', ...claims });

describe('workload identity federation', () => {
  it('a Kubernetes service-account token, no client credentials, gets an app-only token the gateway accepts', async () => {
    const { status, body } = await present(await cluster.mint({ audience: tokenEndpoint }));
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.scope, 'mcp:tools');
    const call = await mcpPost(`${stack.gateway.url}/mcp`, body.access_token, toolsCall('whoami'));
    assert.equal(call.status, 200);
    const who = JSON.parse((await rpcBody<{ result: { content: Array<{ text: string }> } }>(call)).result.content[0]!.text) as Record<string, unknown>;
    assert.equal(who.sub, 'k8s-agent');
    assert.equal(who.client_id, 'k8s-agent');
    assert.equal(who.app_only, true);
    assert.match(stack.server.logs.text(), /workload token accepted/);
    assert.match(stack.server.logs.text(), /system:serviceaccount:gatehouse:nightly/);
  });

  it('answers a store outage 503 temporarily_unavailable with Retry-After (never 500); the token is not used up', async () => {
    // The replay record, and the record of the app-only token under its client.
    for (const namespace of ['assertion-jti', 'app-only-token']) {
      const assertion = await cluster.mint({ audience: tokenEndpoint });
      const response = await withNamespaceOutage(stack.server.store, namespace, () =>
        fetch(tokenEndpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion, resource: mcp }).toString() }),
      );
      assert.equal(response.status, 503, namespace);
      assert.equal(((await response.json()) as { error: string }).error, 'temporarily_unavailable');
      assert.ok(Number(response.headers.get('retry-after')) >= 1, namespace);
      assert.equal((await present(assertion)).status, 200, `${namespace}: the workload retries the same token after the outage`);
    }
  });

  it('records each workload token presented in the audit log: the client it acts as, the MCP server, or why it was refused', async () => {
    audited.length = 0;
    assert.equal((await present(await cluster.mint({ audience: tokenEndpoint }))).status, 200);
    await refused(await githubToken({ repository: 'acme-evil/deploy' }), 'invalid_grant');
    const summary = audited.map(({ user, client, route, method, outcome, status, reason }) => ({ user, client, route, method, outcome, status, reason }));
    assert.deepEqual(summary, [
      { user: undefined, client: 'k8s-agent', route: '/mcp', method: 'jwt-bearer workload', outcome: 'allowed', status: 200, reason: undefined },
      { user: undefined, client: undefined, route: '/token', method: 'jwt-bearer workload', outcome: 'denied', status: 400, reason: 'invalid_grant' },
    ]);
  });

  it('binds the token to the key of a DPoP proof (RFC 9449 §5); a bad or replayed proof is refused', async () => {
    const key = await createDpopKey();
    const proof = await dpopProof(key, { htm: 'POST', htu: tokenEndpoint });
    const { status, body } = await present(await githubToken(), {}, { dpop: proof });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.token_type, 'DPoP');
    const claims = JSON.parse(Buffer.from(body.access_token!.split('.')[1]!, 'base64url').toString('utf8')) as { cnf?: unknown };
    assert.deepEqual(claims.cnf, { jkt: key.jkt });

    // At the gateway the token needs a proof of that key; as a plain bearer token it is refused.
    const gatewayMcp = `${stack.gateway.url}/mcp`;
    const asBearer = await mcpPost(gatewayMcp, body.access_token, toolsCall('whoami'));
    assert.equal(asBearer.status, 401);
    await asBearer.body?.cancel();
    const withProof = await mcpPost(gatewayMcp, undefined, toolsCall('whoami'), {
      authorization: `DPoP ${body.access_token}`,
      dpop: await dpopProof(key, { htm: 'POST', htu: mcp, accessToken: body.access_token }),
    });
    assert.equal(withProof.status, 200, await withProof.clone().text());
    await withProof.body?.cancel();

    // The same proof again (with a fresh assertion), a proof for another URL, and no proof at all but garbage.
    for (const [name, header] of [
      ['a replayed proof', proof],
      ['a proof for another URL', await dpopProof(key, { htm: 'POST', htu: mcp })],
      ['a malformed proof', 'not-a-jwt'],
    ] as const) {
      const assertion = await githubToken();
      const refusal = await present(assertion, {}, { dpop: header });
      assert.deepEqual([refusal.status, refusal.body.error], [400, 'invalid_dpop_proof'], `${name}: ${JSON.stringify(refusal.body)}`);
      // The proof is judged before the assertion: a refused proof leaves the assertion unspent.
      const retried = await present(assertion, {}, { dpop: await dpopProof(key, { htm: 'POST', htu: tokenEndpoint }) });
      assert.equal(retried.status, 200, `${name}, retried with a good proof: ${JSON.stringify(retried.body)}`);
    }
  });

  it("refuses a proof another client already used, though its jti is new to this one (RFC 9449 §11.1)", async () => {
    const key = await createDpopKey();
    const proof = await dpopProof(key, { htm: 'POST', htu: tokenEndpoint });
    const first = await present(await githubToken(), {}, { dpop: proof });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    // The same proof with a Kubernetes token: no client credentials, so the request acts as another client (k8s-agent).
    const assertion = await cluster.mint({ audience: tokenEndpoint });
    const replayed = await present(assertion, {}, { dpop: proof });
    assert.deepEqual([replayed.status, replayed.body.error], [400, 'invalid_dpop_proof'], JSON.stringify(replayed.body));
    const fresh = await present(assertion, {}, { dpop: await dpopProof(key, { htm: 'POST', htu: tokenEndpoint }) });
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
  });

  it('reads the Content-Type of a request without client credentials as a media type, in any case', async () => {
    for (const contentType of ['Application/X-WWW-Form-Urlencoded', 'application/x-www-form-urlencoded; charset=UTF-8']) {
      const { status, body } = await present(await githubToken(), {}, { 'content-type': contentType });
      assert.equal(status, 200, `${contentType}: ${JSON.stringify(body)}`);
    }
  });

  it('a GitHub Actions token maps by repository and ref; requested scopes are cut to the rule', async () => {
    const { status, body } = await present(await githubToken(), { scope: 'mcp:read mcp:admin' });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.scope, 'mcp:read');
    // OpenID Connect's scopes alone name none: all the rule allows, as with no `scope`, not invalid_scope.
    const habit = await present(await githubToken(), { scope: 'openid offline_access' });
    assert.deepEqual([habit.status, habit.body.scope], [200, 'mcp:tools mcp:read'], JSON.stringify(habit.body));
  });

  it('refuses a token from an untrusted issuer, and claims outside the rules', async () => {
    await refused(await untrusted.sign({ sub: 'repo:acme/deploy:ref:refs/heads/main', aud: tokenEndpoint, repository: 'acme/deploy', ref: 'refs/heads/main' }), 'invalid_grant');
    await refused(await githubToken({ repository: 'acme-evil/deploy' }), 'invalid_grant');
    await refused(await githubToken({ ref: 'refs/heads/feature' }), 'invalid_grant');
    await refused(await githubToken({ sub: 'repo:acme/other:ref:refs/heads/main' }), 'invalid_grant');
    await refused(await cluster.mint({ audience: tokenEndpoint, subject: 'system:serviceaccount:other:nightly' }), 'invalid_grant');
  });

  it('refuses an expired token, another audience, a replay, and a workload claiming another client', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await refused(await githubToken({ iat: now - 900, exp: now - 600 }), 'invalid_grant');
    assert.match(expired.error_description ?? '', /expired/);
    await refused(await githubToken({ aud: 'https://elsewhere.example/token' }), 'invalid_grant');
    const once = await githubToken();
    assert.equal((await present(once)).status, 200);
    await refused(once, 'invalid_grant');
    await refused(await githubToken(), 'invalid_grant', { client_id: 'k8s-agent' });
  });

  it('refuses a token that lives longer than a day: its replay record would outlive any real platform token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const tenYears = await refused(await githubToken({ iat: now, exp: now + 10 * 365 * 86_400 }), 'invalid_grant');
    assert.match(tenYears.error_description ?? '', /lifetime/);
    await refused(await githubToken({ iat: now, exp: 1e300 }), 'invalid_grant');
    assert.equal((await present(await githubToken({ iat: now, exp: now + 86_400 }))).status, 200);
  });

  it('a workload token beside a client assertion is not the client\'s credential: the client must authenticate by its own', async () => {
    const forged = await untrusted.sign({ iss: 'k8s-agent', sub: 'k8s-agent', aud: tokenEndpoint });
    const { status, body } = await present(await githubToken(), { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: forged });
    assert.deepEqual([status, body.error, body.access_token], [401, 'invalid_client', undefined], JSON.stringify(body));
  });

  it('takes an Entra-style token id (`uti`, no `jti`) for replay detection; a token with neither is refused', async () => {
    const entraStyle = await githubToken({ jti: undefined, uti: 'entra-token-id-1' });
    assert.equal((await present(entraStyle)).status, 200);
    await refused(await githubToken({ jti: undefined, uti: 'entra-token-id-1' }), 'invalid_grant');
    await refused(await githubToken({ jti: undefined }), 'invalid_grant');
  });

  it('a rule naming a client that is missing, not allowed the grant, or confidential is a configuration error', async () => {
    const { workloadClientProblems } = await import('../../src/authorization/grants/jwt-bearer-grant.ts');
    const { configSchema } = await import('../../src/config/schema.ts');
    const rule = (clientId: string) => ({ clientId, scopes: ['mcp:tools'] });
    const { authorization } = configSchema.parse({
      authorization: {
        clients: [
          { clientId: 'no-grant' },
          { clientId: 'confidential', clientSecret: 'a-secret-of-enough-length', grantTypes: [JWT_BEARER_GRANT] },
        ],
        workloadIdentities: [{ issuer: 'https://issuer.example', rules: [rule('missing'), rule('no-grant'), rule('confidential')] }],
      },
    });
    const problems = workloadClientProblems(authorization);
    assert.equal(problems.length, 3);
    assert.match(problems.join('\n'), /"missing" is not in authorization.clients/);
  });

  it('requires `resource`, a route of this gateway', async () => {
    const response = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion: await githubToken() }).toString(),
    });
    assert.deepEqual([response.status, ((await response.json()) as { error: string }).error], [400, 'invalid_target']);
    await refused(await githubToken(), 'invalid_target', { resource: `${stack.server.publicUrl}/elsewhere` });
  });

  it('advertises the jwt-bearer grant (and no ID-JAG profile without enterprise IdPs)', async () => {
    const metadata = (await (await fetch(`${stack.server.publicUrl}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.ok((metadata.grant_types_supported as string[]).includes(JWT_BEARER_GRANT));
    assert.equal(metadata.authorization_grant_profiles_supported, undefined);
  });
});

describe('workload rule patterns', () => {
  it('`*` is the only wildcard; everything else is literal and anchored', async () => {
    const { patternMatches } = await import('../../src/authorization/grants/workload-rules.ts');
    assert.equal(patternMatches('repo:acme/*', 'repo:acme/deploy:ref:refs/heads/main'), true);
    assert.equal(patternMatches('repo:acme/*', 'repo:acme-evil/deploy'), false);
    assert.equal(patternMatches('a.b', 'axb'), false);
    assert.equal(patternMatches('main', 'refs/heads/main'), false);
    assert.equal(patternMatches('*', 42), false);
    assert.equal(patternMatches('(x|y)+', '(x|y)+'), true);
  });
});
