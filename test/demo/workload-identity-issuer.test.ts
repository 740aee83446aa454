import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import {
  DEFAULT_WORKLOAD_SUBJECT,
  FEDERATED_CREDENTIAL_AUDIENCE,
  startWorkloadIdentityIssuer,
  type WorkloadIdentityIssuer,
} from '../../src/demo/workload-identity/workload-identity-issuer.ts';

describe('local workload-identity issuer (development only)', () => {
  let issuer: WorkloadIdentityIssuer;
  let dir: string;
  before(async () => {
    issuer = await startWorkloadIdentityIssuer({ tokenTtlSeconds: 600 });
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-wi-'));
  });
  after(async () => {
    await issuer?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is OIDC-discoverable and its tokens verify against its JWKS as a service-account token', async () => {
    const discovery = (await (await fetch(`${issuer.issuer}/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string };
    assert.equal(discovery.issuer, issuer.issuer);
    const response = await fetch(`${issuer.issuer}/token`, { method: 'POST' });
    assert.equal(response.status, 200);
    const { token } = (await response.json()) as { token: string };
    const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(discovery.jwks_uri)), {
      issuer: issuer.issuer,
      audience: FEDERATED_CREDENTIAL_AUDIENCE,
      subject: DEFAULT_WORKLOAD_SUBJECT,
    });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 600);
  });

  it('mints only for the configured audiences and answers unknown paths with 404', async () => {
    const wrong = await fetch(`${issuer.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ audience: 'https://graph.microsoft.com' }),
    });
    assert.equal(wrong.status, 400);
    assert.equal(((await wrong.json()) as { error: string }).error, 'invalid_target');
    const malformed = await fetch(`${issuer.issuer}/token`, { method: 'POST', body: '{not json' });
    assert.equal(malformed.status, 400);
    assert.equal((await fetch(`${issuer.issuer}/nope`)).status, 404);
  });

  it('projects a token file and rotates it in place', async () => {
    const file = join(dir, 'azure-identity-token');
    const projected = await issuer.projectToFile(file, { rotateEveryMs: 3_600_000 });
    try {
      const first = await readFile(file, 'utf8');
      assert.equal(decodeJwt(first).sub, DEFAULT_WORKLOAD_SUBJECT);
      await projected.rotate();
      const second = await readFile(file, 'utf8');
      assert.notEqual(second, first);
      assert.equal(decodeJwt(second).aud, FEDERATED_CREDENTIAL_AUDIENCE);
    } finally {
      projected.stop();
    }
  });
});
