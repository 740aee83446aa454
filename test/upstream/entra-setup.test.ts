import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { startGateway } from '../../src/app/start-gateway.ts';
import type { CliIo } from '../../src/cli/command.ts';
import { createEntraSetupCommand } from '../../src/cli/commands/entra.ts';
import { runCli } from '../../src/cli/main.ts';
import { DEMO_WORKLOAD_IDENTITY_PATH } from '../../src/config/demo-defaults.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startLocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { TestBrowser } from '../authorization/harness.ts';
import { freePort } from '../support/demo-harness.ts';
import { GRAPH_SCOPE_IDS, startGraphStandIn, type GraphStandIn } from '../support/graph-stand-in.ts';

/**
 * `gatehouse entra setup` against a Graph stand-in with the same v1.0 shapes: the dry run changes nothing and prints
 * what it would send, a real run creates the registration, service principal, federated credential and consent and
 * writes a config that validates, a second run sends no write, and the written config starts Gatehouse against the
 * local identity provider.
 */
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-entra-setup-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const MI = { clientId: '99999999-8888-7777-6666-555555555555', principalId: '44444444-3333-2222-1111-000000000000' };
const AKS_ISSUER = 'https://eastus.oic.prod-aks.azure.com/tenant/cluster/';

function baseConfig(publicUrl: string): string {
  return [
    '# Gatehouse production config (comments must survive setup)',
    'mode: production',
    'server:',
    `  publicUrl: ${publicUrl}`,
    'routes:',
    '  - path: /mcp',
    '    backend: http://127.0.0.1:3001/mcp',
    '    downstream: [graph]',
    'broker:',
    '  downstream:',
    '    - name: graph',
    '      audience: https://graph.microsoft.com',
    '      scopes: [https://graph.microsoft.com/User.Read, https://graph.microsoft.com/Mail.Read]',
    '',
  ].join('\n');
}

function captureIo(): CliIo & { out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return { stdout: (text) => out.push(text), stderr: (text) => err.push(text), env: {}, cwd: dir, out: () => out.join(''), err: () => err.join('') };
}

async function setup(graph: GraphStandIn, configFile: string, args: string[]) {
  const io = captureIo();
  const command = createEntraSetupCommand({ credential: async () => ({ getToken: async () => ({ token: graph.token }) }) });
  const code = await runCli(['entra', 'setup', '--config', configFile, '--graph-url', graph.url, ...args], io, [command]);
  return { code, out: io.out(), err: io.err() };
}

const aks = ['--federation', 'aks', '--aks-issuer', AKS_ISSUER];

describe('gatehouse entra setup', () => {
  let graph: GraphStandIn;
  let configFile: string;
  beforeEach(async () => {
    graph = await startGraphStandIn({ managedIdentities: [MI] });
    configFile = join(dir, `gatehouse-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(configFile, baseConfig('https://gatehouse.example.com'), { mode: 0o600 });
  });
  afterEach(() => graph.close());

  it("says what to do when the operator's sign-in fails, for either way of signing in", async () => {
    for (const [signIn, advice] of [
      ['azure-cli', /sign-in for Microsoft Graph failed: Azure CLI could not be found\. — sign in with "az login --tenant.*or pass --sign-in device-code/],
      ['device-code', /sign-in for Microsoft Graph failed: Azure CLI could not be found\. — check that Microsoft's sign-in \(login\.microsoftonline\.com\) is reachable/],
    ] as const) {
      const io = captureIo();
      const failing = createEntraSetupCommand({ credential: async () => ({ getToken: () => Promise.reject(new Error('Azure CLI could not be found.\nPlease visit https://aka.ms/azure-cli')) }) });
      const code = await runCli(['entra', 'setup', '--config', configFile, '--graph-url', graph.url, '--sign-in', signIn, ...aks], io, [failing]);
      assert.equal(code, 1, io.err());
      assert.match(io.err(), advice);
    }
  });

  it('--dry-run reads, prints every request it would send with its body, and changes neither Graph nor the file', async () => {
    const before = readFileSync(configFile, 'utf8');
    const { code, out, err } = await setup(graph, configFile, [...aks, '--dry-run']);
    assert.equal(code, 0, err);
    assert.deepEqual(graph.writes, []);
    assert.equal(readFileSync(configFile, 'utf8'), before);
    assert.match(out, new RegExp(`^GET ${graph.url}/v1\\.0/organization$`, 'm'));
    assert.match(out, new RegExp(`^would send POST ${graph.url}/v1\\.0/applications$`, 'm'));
    assert.match(out, /"redirectUris": \[\n\s+"https:\/\/gatehouse\.example\.com\/callback"/);
    assert.match(out, /"requestedAccessTokenVersion": 2/);
    assert.match(out, /^would send POST .*\/federatedIdentityCredentials$/m);
    assert.match(out, /"subject": "system:serviceaccount:gatehouse:gatehouse"/);
    assert.match(out, /Dry run: \d+ change\(s\) would be sent/);
    assert.ok(!out.includes(graph.token) && !err.includes(graph.token), 'the operator token is never printed');
  });

  it('a real run creates everything, writes a valid upstream section keeping the rest of the file, and a second run sends no write', async () => {
    const client = '12121212-3434-5656-7878-909090909090';
    const { code, out, err } = await setup(graph, configFile, [...aks, '--pre-authorize', client, '--grant-admin-consent']);
    assert.equal(code, 0, err);
    const [app] = graph.applications;
    assert.ok(app && graph.applications.length === 1);
    const appId = String(app.appId);
    assert.deepEqual((app.web as { redirectUris: string[] }).redirectUris, ['https://gatehouse.example.com/callback']);
    assert.deepEqual(app.identifierUris, [`api://${appId}`]);
    const api = app.api as { requestedAccessTokenVersion: number; oauth2PermissionScopes: { id: string; value: string }[]; preAuthorizedApplications: { appId: string; delegatedPermissionIds: string[] }[] };
    assert.equal(api.requestedAccessTokenVersion, 2);
    const scope = api.oauth2PermissionScopes.find((candidate) => candidate.value === 'access_as_user');
    assert.ok(scope);
    assert.deepEqual(api.preAuthorizedApplications, [{ appId: client, delegatedPermissionIds: [scope.id] }]);
    const graphAccess = (app.requiredResourceAccess as { resourceAppId: string; resourceAccess: { id: string }[] }[])[0];
    assert.equal(graphAccess?.resourceAppId, '00000003-0000-0000-c000-000000000000');
    const expectedPermissions = ['openid', 'profile', 'email', 'offline_access', 'User.Read', 'Mail.Read'];
    assert.deepEqual(graphAccess.resourceAccess.map((access) => access.id).sort(), expectedPermissions.map((name) => GRAPH_SCOPE_IDS[name]).sort());
    const principal = graph.servicePrincipals.find((candidate) => candidate.appId === appId);
    assert.ok(principal);
    assert.deepEqual(
      graph.federatedCredentials.get(app.id)?.map(({ issuer, subject, audiences }) => ({ issuer, subject, audiences })),
      [{ issuer: AKS_ISSUER, subject: 'system:serviceaccount:gatehouse:gatehouse', audiences: ['api://AzureADTokenExchange'] }],
    );
    assert.equal(graph.grants.length, 1);
    assert.equal(graph.grants[0]?.consentType, 'AllPrincipals');
    assert.equal(graph.grants[0]?.scope, expectedPermissions.join(' '));
    assert.match(out, /consented for the whole tenant/);

    const written = readFileSync(configFile, 'utf8');
    assert.match(written, /^# Gatehouse production config \(comments must survive setup\)/);
    assert.deepEqual(parse(written).upstream, {
      type: 'entra',
      entra: { tenantId: graph.tenantId },
      clientId: appId,
      clientAuth: { method: 'federated', audience: 'api://AzureADTokenExchange' },
      scopes: ['openid', 'profile', 'email', 'offline_access', `api://${appId}/access_as_user`],
    });
    const loaded = loadConfig({ file: configFile, env: { AZURE_FEDERATED_TOKEN_FILE: join(dir, 'token') }, cwd: dir });
    assert.equal(loaded.config.upstream?.clientId, appId);

    const writes = graph.writes.length;
    const again = await setup(graph, configFile, [...aks, '--pre-authorize', client, '--grant-admin-consent']);
    assert.equal(again.code, 0, again.err);
    assert.equal(graph.writes.length, writes, `a second run sends no write: ${graph.writes.slice(writes).join(', ')}`);
    assert.match(again.out, /0 change\(s\) sent; application id/);
    assert.equal(readFileSync(configFile, 'utf8'), written);

    const dry = await setup(graph, configFile, [...aks, '--dry-run']);
    assert.match(dry.out, /Dry run: 0 change\(s\) would be sent/);
    assert.ok(dry.out.includes(stringify({ clientId: appId }).trim()));
  });

  it('managed identity: the credential trusts the identity\'s principal id on the tenant issuer; an existing registration keeps its own redirect URIs', async () => {
    const first = await setup(graph, configFile, ['--federation', 'managed-identity', '--managed-identity-client-id', MI.clientId]);
    assert.equal(first.code, 0, first.err);
    const [app] = graph.applications;
    assert.ok(app);
    (app.web as { redirectUris: string[] }).redirectUris.unshift('https://other.example.com/callback');
    writeFileSync(configFile, baseConfig('https://gatehouse2.example.com'));
    const second = await setup(graph, configFile, ['--federation', 'managed-identity', '--managed-identity-client-id', MI.clientId]);
    assert.equal(second.code, 0, second.err);
    assert.equal(graph.applications.length, 1, 'found by name, not created again');
    assert.deepEqual((app.web as { redirectUris: string[] }).redirectUris, ['https://other.example.com/callback', 'https://gatehouse.example.com/callback', 'https://gatehouse2.example.com/callback']);
    const [credential] = graph.federatedCredentials.get(app.id) ?? [];
    assert.equal(credential?.issuer, `https://login.microsoftonline.com/${graph.tenantId}/v2.0`);
    assert.equal(credential?.subject, MI.principalId);
    assert.deepEqual(parse(readFileSync(configFile, 'utf8')).upstream.clientAuth, { method: 'federated', managedIdentityClientId: MI.clientId, audience: 'api://AzureADTokenExchange' });
    assert.match(second.out, /need admin consent .*: https:\/\/login\.microsoftonline\.com\/[0-9a-f-]+\/adminconsent\?client_id=/);
    assert.equal(graph.grants.length, 0, 'no consent without --grant-admin-consent');
  });

  it('usage mistakes exit 2 and Graph failures exit 1, each in one line without the token', async () => {
    const missing = await setup(graph, configFile, []);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /^gatehouse: --federation must be managed-identity, aks or github/);
    const noIssuer = await setup(graph, configFile, ['--federation', 'aks']);
    assert.equal(noIssuer.code, 2);
    assert.match(noIssuer.err, /--federation aks needs --aks-issuer/);
    const noFile = await setup(graph, join(dir, 'nothere.yaml'), aks);
    assert.equal(noFile.code, 2);
    assert.match(noFile.err, /the configuration file ".*nothere\.yaml" does not exist/);
    const unknownMi = await setup(graph, configFile, ['--federation', 'managed-identity', '--managed-identity-client-id', '00000000-1111-2222-3333-444444444444']);
    assert.equal(unknownMi.code, 1);
    assert.match(unknownMi.err, /no managed identity with client id/);
    graph.failNext = { status: 403, code: 'Authorization_RequestDenied', message: 'Insufficient privileges to complete the operation.' };
    const denied = await setup(graph, configFile, aks);
    assert.equal(denied.code, 1);
    assert.equal(denied.err.trim().split('\n').length, 1);
    assert.match(denied.err, /403 Authorization_RequestDenied: Insufficient privileges/);
    assert.ok(!denied.err.includes(graph.token) && !denied.out.includes(graph.token));
  });

  it('the written config starts Gatehouse against the local identity provider (issuer swapped: Entra cannot be reached)', async () => {
    const [port, idpPort] = [await freePort(), await freePort()];
    const publicUrl = `http://localhost:${port}`;
    writeFileSync(configFile, `${baseConfig(publicUrl)}store:\n  sqlitePath: ${JSON.stringify(join(dir, `gatehouse-${port}.db`))}\n`);
    const run = await setup(graph, configFile, [...aks, '--grant-admin-consent']);
    assert.equal(run.code, 0, run.err);
    const written = parse(readFileSync(configFile, 'utf8'));
    const appId: string = written.upstream.clientId;

    // The local IdP plays the tenant: the app id as client id, `api://<app id>` as its API, the redirect URI Entra has.
    const idp = await startLocalIdentityProvider({
      port: idpPort,
      host: '127.0.0.1',
      gateway: { clientId: appId, redirectUris: [`${publicUrl}/callback`], audience: `api://${appId}` },
      downstreamAudiences: ['https://graph.microsoft.com'],
      workloadIdentityPath: DEMO_WORKLOAD_IDENTITY_PATH,
    });
    // What cannot run here is swapped, nothing else: the Entra issuer (https, login.microsoftonline.com) becomes the
    // local IdP's, the AKS token file the local workload-identity issuer, and (no TLS here) cookies go without Secure
    // on this http://localhost public URL. clientId and scopes stay as written.
    written.dev = { insecureCookies: true };
    written.upstream = { ...written.upstream, type: 'oidc', issuer: idp.issuer, clientAuth: { method: 'federated', issuerUrl: `${idp.issuer}${DEMO_WORKLOAD_IDENTITY_PATH}` } };
    delete written.upstream.entra;
    writeFileSync(configFile, stringify(written));
    const signals = new EventEmitter();
    const io = captureIo();
    const gateway = await startGateway({ file: configFile, port: String(port), logLevel: 'silent', io, signals });
    try {
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.deepEqual(await ready.json(), { status: 'ok', checks: { store: 'ok', upstream: 'ok' } });

      // A client's authorization reaches the IdP with the registration's client id, redirect URI and API scope, and
      // the IdP accepts them (an unknown client, redirect URI or scope would be an error page, not its sign-in).
      const browser = new TestBrowser();
      const registered = (await (
        await fetch(`http://127.0.0.1:${port}/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ client_name: 'Setup test', redirect_uris: ['http://127.0.0.1:53682/callback'], token_endpoint_auth_method: 'none' }),
        })
      ).json()) as { client_id: string };
      const authorize = new URL('/authorize', publicUrl);
      for (const [key, value] of Object.entries({
        client_id: registered.client_id,
        redirect_uri: 'http://127.0.0.1:53682/callback',
        response_type: 'code',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
        resource: `${publicUrl}/mcp`,
      })) authorize.searchParams.set(key, value);
      const consent = await browser.follow(authorize.href, publicUrl);
      const html = await consent.response.text();
      const consentState = /name="consent_state" value="([^"]+)"/.exec(html)?.[1] ?? '';
      const csrf = /name="csrf_token" value="([^"]+)"/.exec(html)?.[1] ?? '';
      const action = (/<form method="post" action="([^"]+)"/.exec(html)?.[1] ?? '').replace(/&amp;/g, '&');
      const approved = await browser.request(new URL(action, publicUrl).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: publicUrl },
        body: new URLSearchParams({ consent_state: consentState, csrf_token: csrf, decision: 'approve' }).toString(),
      });
      const upstreamRequest = new URL(approved.headers.get('location') ?? '', publicUrl);
      assert.equal(upstreamRequest.origin, new URL(idp.issuer).origin);
      assert.equal(upstreamRequest.searchParams.get('client_id'), appId);
      assert.equal(upstreamRequest.searchParams.get('redirect_uri'), `${publicUrl}/callback`);
      assert.ok(upstreamRequest.searchParams.get('scope')?.split(' ').includes(`api://${appId}/access_as_user`));
      const signIn = await browser.follow(upstreamRequest.href, idp.issuer);
      assert.equal(signIn.response.status, 200, `the IdP shows its sign-in page: ${signIn.url}`);
      assert.match(await signIn.response.text(), /id="username"/);
    } finally {
      signals.emit('SIGTERM');
      await gateway.lifecycle.stopped;
      await idp.close();
    }
  });
});
