import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ID_JAG_TYP, JWT_BEARER_GRANT } from '../../src/protocol/oauth-urns.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { startTestTokenIssuer, type TestTokenIssuer } from '../support/test-token-issuer.ts';
import { startAuthorizationReplicas, type TestServer } from './harness.ts';

/**
 * ID-JAG replay detection across replicas: two authorization server instances behind one public URL share a real
 * Redis, so an assertion accepted by one is refused by the other, and of concurrent presentations exactly one wins.
 */
const SECRET = 'chat-client-secret-for-tests';
let redis: RedisServer;
let idp: TestTokenIssuer;
let replicas: Awaited<ReturnType<typeof startAuthorizationReplicas>>;
let replicaA: TestServer;
let replicaB: TestServer;

before(async () => {
  redis = await startRedisServer();
  idp = await startTestTokenIssuer({ typ: ID_JAG_TYP });
  replicas = await startAuthorizationReplicas(redis.url, {
    authorization: {
      clients: [{ clientId: 'chat-client', clientSecret: SECRET, grantTypes: [JWT_BEARER_GRANT] }],
      enterpriseIdps: [{ issuer: idp.issuer, clients: ['chat-client'] }],
    },
  });
  ({ a: replicaA, b: replicaB } = replicas);
});
after(async () => {
  await replicas?.close();
  await idp?.close();
  await redis?.stop();
});

const assertion = () =>
  idp.sign({ sub: 'alice', aud: replicaA.publicUrl, client_id: 'chat-client', resource: `${replicaA.publicUrl}/mcp`, scope: 'mcp:tools' });

async function present(replica: TestServer, jwt: string): Promise<{ status: number; error?: string }> {
  const response = await fetch(`${replica.listenUrl}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`chat-client:${SECRET}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion: jwt }).toString(),
  });
  const body = (await response.json()) as { error?: string };
  return { status: response.status, ...(body.error === undefined ? {} : { error: body.error }) };
}

describe('ID-JAG jti replay across replicas (real Redis)', () => {
  it('an assertion used at one replica is refused at the other', async () => {
    const jwt = await assertion();
    assert.deepEqual(await present(replicaA, jwt), { status: 200 });
    assert.deepEqual(await present(replicaB, jwt), { status: 400, error: 'invalid_grant' });
  });

  it('of concurrent presentations on both replicas exactly one gets a token', async () => {
    const jwt = await assertion();
    const results = await Promise.all([replicaA, replicaB, replicaA, replicaB].map((replica) => present(replica, jwt)));
    assert.equal(results.filter((result) => result.status === 200).length, 1, JSON.stringify(results));
    assert.equal(results.filter((result) => result.error === 'invalid_grant').length, 3, JSON.stringify(results));
  });
});
