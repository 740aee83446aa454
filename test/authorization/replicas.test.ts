import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';


import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { CLIENT_REDIRECT, grantIdOf, obtainCode, registerPublicClient, startAuthorizationReplicas, type TestServer } from './harness.ts';

/**
 * Two authorization-server replicas on one real Redis: a client registered on one is known to the other, a code
 * issued by one is redeemed on the other, and refresh-token reuse detected on one revokes the grant for both.
 */
describe('two replicas sharing a Redis store', () => {
  let redis: RedisServer;
  let replicas: Awaited<ReturnType<typeof startAuthorizationReplicas>>;
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    redis = await startRedisServer();
    replicas = await startAuthorizationReplicas(redis.url, { authorization: { refreshReuseGraceSeconds: 0 } });
    ({ a, b } = replicas);
  });
  after(async () => {
    await replicas?.close();
    await redis?.stop();
  });

  const token = (server: TestServer, params: Record<string, string>) =>
    fetch(`${server.listenUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params).toString(),
    });

  it('shares clients, codes, rotation and revocation across replicas', async () => {
    const client = await registerPublicClient(a);
    const { code, verifier } = await obtainCode(a, client);
    const exchanged = await token(b, {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: CLIENT_REDIRECT,
      client_id: client.client_id,
      resource: a.resource,
    });
    assert.equal(exchanged.status, 200, await exchanged.clone().text());
    const first = (await exchanged.json()) as { access_token: string; refresh_token: string };
    const gid = grantIdOf(first.access_token);

    const replayOnA = await token(a, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: client.client_id });
    assert.equal(replayOnA.status, 400, 'the code was consumed on the other replica');
    assert.ok(await a.store.get('revoked-grant', gid), 'and the replay revoked the grant for everyone');
  });

  it('detects refresh-token reuse across replicas', async () => {
    const client = await registerPublicClient(b);
    const { code, verifier } = await obtainCode(a, client);
    const issued = (await (await token(a, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: client.client_id })).json()) as {
      access_token: string;
      refresh_token: string;
    };
    const rotated = await token(b, { grant_type: 'refresh_token', refresh_token: issued.refresh_token, client_id: client.client_id });
    assert.equal(rotated.status, 200);
    const next = (await rotated.json()) as { refresh_token: string };
    const reuse = await token(a, { grant_type: 'refresh_token', refresh_token: issued.refresh_token, client_id: client.client_id });
    assert.equal(reuse.status, 400);
    const legit = await token(b, { grant_type: 'refresh_token', refresh_token: next.refresh_token, client_id: client.client_id });
    assert.equal(legit.status, 400, 'the whole grant is revoked on both replicas');
    assert.ok(await b.store.get('revoked-grant', grantIdOf(issued.access_token)));
  });
});
