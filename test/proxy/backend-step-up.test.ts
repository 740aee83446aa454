import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createBackendStepUp, parseClaimsChallenge } from '../../src/proxy/backend-step-up.ts';
import { pendingStepUp, rememberStepUp } from '../../src/records/step-up.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { readRecord } from '../../src/store/record-access.ts';
import { revokedGrantRecord } from '../../src/records/grants.ts';
import { createDpopKey, dpopProof } from '../support/dpop.ts';
import { mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * A backend's 401 `insufficient_claims` (Graph's continuous access evaluation answer, or the sample server's answer
 * when the gateway's token exchange needs a step-up) becomes the gateway's own challenge only with evidence: the
 * challenge itself, or a step-up the broker met for this user. Otherwise it stays a backend refusing the gateway.
 */
const challengeJson = '{"access_token":{"nbf":{"essential":true,"value":"1604106651"}}}';
const target = { resourceMetadataUrl: 'https://gatehouse.test/.well-known/oauth-protected-resource/mcp', scope: 'mcp:tools' };

describe('parseClaimsChallenge', () => {
  const cases: Array<[string, string | string[] | undefined, { claims?: string } | undefined]> = [
    ['Graph CAE answer with its base64 claims', `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="${Buffer.from(challengeJson).toString('base64')}"`, { claims: challengeJson }],
    ['insufficient_claims without claims', 'Bearer error="insufficient_claims", error_description="sign in again"', {}],
    ['any case of the scheme', 'bearer error="insufficient_claims"', {}],
    ['claims that are not base64 JSON are dropped', `Bearer error="insufficient_claims", claims="${Buffer.from('not json').toString('base64')}"`, {}],
    ['claims asking for ID token members (not a claims challenge) are dropped', `Bearer error="insufficient_claims", claims="${Buffer.from('{"id_token":{"sub":{"value":"tenant/bob"}}}').toString('base64')}"`, {}],
    ['claims with more than the access_token member are dropped', `Bearer error="insufficient_claims", claims="${Buffer.from(`{"access_token":{},"userinfo":{"groups":null}}`).toString('base64')}"`, {}],
    ['another error', 'Bearer error="invalid_token"', undefined],
    ['another scheme', 'Basic realm="x", error="insufficient_claims"', undefined],
    ['no header', undefined, undefined],
    ['an oversized header', `Bearer error="insufficient_claims", claims="${'A'.repeat(10_000)}"`, undefined],
  ];
  for (const [name, header, expected] of cases) {
    it(name, () => {
      assert.deepEqual(parseClaimsChallenge(header), expected);
    });
  }
});

describe('a backend step-up', () => {
  const clock = new ManualClock(1_700_000_000_000);
  let store: Store;
  let ended: string[];
  const stores: Store[] = [];
  beforeEach(async () => {
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    stores.push(store);
    ended = [];
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });
  const stepUp = () => createBackendStepUp({ store, clock, endGrant: async (grantId, reason) => ended.push(`${grantId}:${reason}`) > 0 });
  const input = (wwwAuthenticate: string) => ({ subject: 'tenant/user', grantId: 'g1', challenge: target, wwwAuthenticate });

  it('with the claims challenge: remembered for the next sign-in, the grant ended, a 401 naming the gateway resource', async () => {
    const header = `Bearer error="insufficient_claims", claims="${Buffer.from(challengeJson).toString('base64')}"`;
    const answer = await stepUp().answer(input(header));
    assert.equal(answer?.status, 401);
    assert.match(answer?.headers['www-authenticate'] ?? '', /resource_metadata="https:\/\/gatehouse\.test\/[^"]+", scope="mcp:tools", error="invalid_token"/);
    assert.doesNotMatch(`${answer?.message} ${JSON.stringify(answer?.headers)}`, /nbf|1604106651/, 'the challenge is not shown to the client');
    assert.deepEqual(ended, ['g1:upstream_step_up']);
    assert.equal((await pendingStepUp(store, 'tenant/user'))?.claims, challengeJson);
  });

  it('without a challenge: a 401 only when the broker met a step-up for this user', async () => {
    const header = 'Bearer error="insufficient_claims"';
    assert.equal(await stepUp().answer(input(header)), undefined, 'no evidence: the backend cannot end the grant');
    assert.deepEqual(ended, []);
    await rememberStepUp(store, 'tenant/user', { reason: 'interaction_required', createdAt: clock.now() });
    assert.equal((await stepUp().answer(input(header)))?.status, 401);
    assert.deepEqual(ended, ['g1:upstream_step_up']);
  });

  it('without a challenge, when the broker found the upstream session ended: a 401, the grant ended as such', async () => {
    await rememberStepUp(store, 'tenant/user', { reason: 'upstream_session_ended', createdAt: clock.now() });
    assert.equal((await stepUp().answer(input('Bearer error="insufficient_claims"')))?.status, 401);
    assert.deepEqual(ended, ['g1:upstream_invalid_grant']);
  });

  it('puts the error on the DPoP challenge for a DPoP-bound caller (RFC 9449 §7.1)', async () => {
    const header = `Bearer error="insufficient_claims", claims="${Buffer.from(challengeJson).toString('base64')}"`;
    const answer = await stepUp().answer({ ...input(header), challenge: { ...target, dpop: 'optional' }, scheme: 'dpop' });
    assert.match(answer?.headers['www-authenticate'] ?? '', /^Bearer resource_metadata="[^"]+", scope="mcp:tools", DPoP algs="[^"]+", error="invalid_token"$/);
  });

  it('any other 401 stays a backend refusing the gateway', async () => {
    await rememberStepUp(store, 'tenant/user', { reason: 'interaction_required', createdAt: clock.now() });
    assert.equal(await stepUp().answer(input('Bearer error="invalid_token"')), undefined);
    assert.deepEqual(ended, []);
  });
});

describe('a malicious backend answering every call with insufficient_claims', () => {
  let backend: Server;
  let gateway: TestGateway;
  let challenge = '';
  before(async () => {
    backend = createServer((_req, res) => {
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const { port } = backend.address() as AddressInfo;
    gateway = await startTestGateway({ config: { routes: [{ path: '/mcp', backend: `http://127.0.0.1:${port}/mcp` }] } });
  });
  after(async () => {
    await gateway?.close();
    await new Promise((resolve) => backend?.close(resolve));
  });
  const callAs = async (sub: string, gid: string) => {
    const token = await mintAccessToken(gateway.keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub, gid });
    const response = await mcpPost(`${gateway.url}/mcp`, token, toolsCall('echo'));
    await response.body?.cancel();
    return response.status;
  };
  const revoked = async (gid: string) => (await readRecord(gateway.store, revokedGrantRecord, gid)) !== undefined;

  it("ends only the caller's own grant and remembers the step-up only for the caller", async () => {
    challenge = `Bearer error="insufficient_claims", claims="${Buffer.from(challengeJson).toString('base64')}"`;
    assert.equal(await callAs('tenant/bob', 'grant-bob'), 401);
    assert.equal(await revoked('grant-bob'), true);
    assert.equal(await revoked('grant-alice'), false, "another user's grant is untouched");
    assert.equal(await pendingStepUp(gateway.store, 'tenant/alice'), undefined, 'no claims forced on another user');
    assert.equal((await pendingStepUp(gateway.store, 'tenant/bob'))?.claims, challengeJson);
  });

  it('answers a DPoP-bound caller on the DPoP challenge', async () => {
    challenge = `Bearer error="insufficient_claims", claims="${Buffer.from(challengeJson).toString('base64')}"`;
    const key = await createDpopKey();
    const token = await mintAccessToken(gateway.keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub: 'tenant/dave', cnf: { jkt: key.jkt } });
    const dpop = await dpopProof(key, { htm: 'POST', htu: `${gateway.url}/mcp`, accessToken: token });
    const response = await mcpPost(`${gateway.url}/mcp`, undefined, toolsCall('echo'), { authorization: `DPoP ${token}`, dpop });
    await response.body?.cancel();
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /DPoP algs="[^"]+", error="invalid_token"$/);
  });

  it('does not replay a claims value that is not a JSON object to the IdP, and ends no grant without evidence', async () => {
    challenge = `Bearer error="insufficient_claims", claims="${Buffer.from('"); login_hint=x').toString('base64')}"`;
    assert.equal(await callAs('tenant/carol', 'grant-carol'), 502);
    assert.equal(await revoked('grant-carol'), false);
    assert.equal(await pendingStepUp(gateway.store, 'tenant/carol'), undefined);
  });
});

describe('a backend behind a plain HTTP route answering 401', () => {
  // Relayed as it was, the backend's 401 reached the client without a WWW-Authenticate (the backend's own is dropped:
  // it names the backend), the grant stayed, and a refreshed token met the same 401 for ever.
  let backend: Server;
  let gateway: TestGateway;
  let answer: { status: number; challenge?: string } = { status: 200 };
  before(async () => {
    backend = createServer((_req, res) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (answer.challenge !== undefined) headers['www-authenticate'] = answer.challenge;
      res.writeHead(answer.status, headers).end('{"error":"from the backend","trace":"at /srv/api.js:42"}');
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const { port } = backend.address() as AddressInfo;
    gateway = await startTestGateway({ config: { routes: [{ path: '/api', type: 'http', backend: `http://127.0.0.1:${port}/v1` }] } });
  });
  after(async () => {
    await gateway?.close();
    await new Promise((resolve) => backend?.close(resolve));
  });
  const get = async (sub: string, gid: string) => {
    const token = await mintAccessToken(gateway.keyring, gateway.url, { aud: `${gateway.url}/api`, sub, gid });
    return fetch(`${gateway.url}/api/me`, { headers: { authorization: `Bearer ${token}` } });
  };
  const revoked = async (gid: string) => (await readRecord(gateway.store, revokedGrantRecord, gid)) !== undefined;

  it('turns a step-up into the gateway\'s own challenge and ends the grant', async () => {
    answer = { status: 401, challenge: `Bearer error="insufficient_claims", claims="${Buffer.from(challengeJson).toString('base64')}"` };
    const response = await get('tenant/erin', 'grant-erin');
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer resource_metadata="[^"]+\/api", .*error="invalid_token"/);
    assert.equal(await revoked('grant-erin'), true);
  });

  it('answers any other 401 (the gateway\'s identity refused) 502, with nothing of the backend\'s body', async () => {
    answer = { status: 401, challenge: 'Bearer error="invalid_token"' };
    const response = await get('tenant/frank', 'grant-frank');
    assert.equal(response.status, 502);
    assert.doesNotMatch(await response.text(), /from the backend|srv\/api/);
    assert.equal(await revoked('grant-frank'), false);
  });

  it('conceals a backend failure (5xx) as MCP routes do, and relays a 403 as the backend\'s answer', async () => {
    answer = { status: 500 };
    const failed = await get('tenant/gina', 'grant-gina');
    assert.equal(failed.status, 502);
    assert.doesNotMatch(await failed.text(), /from the backend|srv\/api/);
    answer = { status: 403 };
    const forbidden = await get('tenant/gina', 'grant-gina');
    assert.equal(forbidden.status, 403);
    assert.match(await forbidden.text(), /from the backend/);
  });
});
