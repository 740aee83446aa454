import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { allowInsecureRequests, Configuration } from 'openid-client';
import type { ClaimMapping } from '../../src/upstream/claim-mapping.ts';
import { UpstreamError } from '../../src/upstream/errors.ts';
import { withUserinfoClaims } from '../../src/upstream/userinfo.ts';

/**
 * The userinfo call of a sign-in, against a real HTTP endpoint: what it adds, and how each failure is told to the
 * client. An answer about another user is a refusal, not "try again later"; an IdP that did not answer may next time.
 */
const GENERIC: ClaimMapping = { preset: 'generic', subject: 'sub', name: 'name', email: 'email', groups: ['groups'], userinfo: 'auto' };

describe('userinfo claims', () => {
  let server: Server;
  let answer: (response: import('node:http').ServerResponse) => void = () => {};
  let base = '';

  before(async () => {
    server = createServer((_request, response) => answer(response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const configurationFor = (userinfoEndpoint: string): Configuration => {
    const configuration = new Configuration({ issuer: base, userinfo_endpoint: userinfoEndpoint }, 'gatehouse');
    allowInsecureRequests(configuration);
    return configuration;
  };
  const idTokenClaims = { iss: base, sub: 'user-1', aud: 'gatehouse', name: 'From the ID token' };
  const call = (endpoint = `${base}/userinfo`) =>
    withUserinfoClaims({ configuration: configurationFor(endpoint), idTokenClaims, accessToken: 'upstream-access-token', mapping: GENERIC });
  const json = (status: number, body: unknown) => (response: import('node:http').ServerResponse) =>
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

  it('adds what the ID token lacks, and the signed ID token wins where both name a claim', async () => {
    answer = json(200, { sub: 'user-1', name: 'From userinfo', email: 'user@example.test', groups: ['ops'] });
    const claims = await call();
    assert.equal(claims.name, 'From the ID token');
    assert.equal(claims.email, 'user@example.test');
    assert.deepEqual(claims.groups, ['ops']);
  });

  it("never takes userinfo's email_verified for the ID token's own, other address: an address and its verification come as a pair", async () => {
    const claimsWith = (token: Record<string, unknown>) =>
      withUserinfoClaims({ configuration: configurationFor(`${base}/userinfo`), idTokenClaims: { ...idTokenClaims, ...token }, accessToken: 'upstream-access-token', mapping: GENERIC });
    answer = json(200, { sub: 'user-1', email: 'mixer@example.test', email_verified: true });
    // The ID token names the admin's address, unverified; userinfo vouches for the user's own.
    const mixed = await claimsWith({ email: 'admin@example.test' });
    assert.equal(mixed.email, 'admin@example.test');
    assert.equal(mixed.email_verified, undefined);
    // The same address on both sides: userinfo's word stands for it.
    answer = json(200, { sub: 'user-1', email: 'admin@example.test', email_verified: true });
    assert.equal((await claimsWith({ email: 'admin@example.test' })).email_verified, true);
    // No address in the ID token: both come from userinfo.
    answer = json(200, { sub: 'user-1', email: 'user@example.test', email_verified: true });
    const fromUserinfo = await claimsWith({});
    assert.deepEqual([fromUserinfo.email, fromUserinfo.email_verified], ['user@example.test', true]);
    // The ID token's own word is kept, whatever userinfo says.
    answer = json(200, { sub: 'user-1', email: 'other@example.test', email_verified: true });
    assert.equal((await claimsWith({ email: 'admin@example.test', email_verified: false })).email_verified, false);
  });

  for (const [label, respond] of [
    ["another user's sub", json(200, { sub: 'user-2', email: 'someone-else@example.test' })],
    ['no sub at all', json(200, { email: 'user@example.test' })],
    ['a body that is not JSON', (response: import('node:http').ServerResponse) => response.writeHead(200, { 'content-type': 'text/html' }).end('<html>')],
    ['the access token refused (401)', json(401, { error: 'invalid_token' })],
  ] as const) {
    it(`refuses the sign-in (access_denied) on ${label}`, async () => {
      answer = respond;
      await assert.rejects(call(), (error: unknown) => error instanceof UpstreamError && error.code === 'access_denied');
    });
  }

  it('answers temporarily_unavailable when the IdP fails (5xx) or cannot be reached', async () => {
    answer = json(503, { error: 'temporarily_unavailable' });
    await assert.rejects(call(), (error: unknown) => error instanceof UpstreamError && error.code === 'temporarily_unavailable');
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const unreachable = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/userinfo`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(call(unreachable), (error: unknown) => error instanceof UpstreamError && error.code === 'temporarily_unavailable');
  });
});
