import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { exportJWK } from 'jose';
import { createDpopKey, dpopProof, unsignedJwt, type DpopKey } from '../support/dpop.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createOidcAdapter } from '../../src/store/oidc-adapter.ts';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import {
  exchangeCode,
  grantIdOf,
  obtainCode,
  obtainTokens,
  registerPublicClient,
  startAuthorizationServer,
  tokenRequest,
  type RegisteredClient,
  type TestServer,
  CONFIDENTIAL_CLIENT,
  confidentialClientConfig,
  basicAuthorization,
} from './harness.ts';


describe('token endpoint: codes, refresh rotation, revocation, introspection', () => {
  let server: TestServer;
  let client: RegisteredClient;

  before(async () => {
    server = await startAuthorizationServer({
      authorization: {
        refreshReuseGraceSeconds: 10,
        clients: [confidentialClientConfig],
      },
    });
    client = await registerPublicClient(server);
  });
  afterEach(() => {
    mock.timers.reset();
  });
  after(async () => {
    await server.close();
  });

  const isRevoked = async (gid: string) => (await server.store.get('revoked-grant', gid)) !== undefined;

  async function refresh(refreshToken: string): Promise<Response> {
    return tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
  }

  it('refuses a wrong PKCE verifier and issues nothing', async () => {
    const { code } = await obtainCode(server, client);
    const response = await exchangeCode(server, client, code, 'x'.repeat(43));
    assert.equal(response.status, 400);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body.error, 'invalid_grant');
    assert.equal(body.access_token, undefined);
    assert.match(response.headers.get('cache-control') ?? '', /no-store/);
  });

  it('refuses a token request for another resource than the one authorized', async () => {
    const { code, verifier } = await obtainCode(server, client);
    const response = await tokenRequest(server, {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: client.redirect_uris[0] ?? '',
      client_id: client.client_id,
      resource: 'https://other.example.test/mcp',
    });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: string }).error, 'invalid_target');
  });

    it('refuses a replayed code and revokes the grant it issued', async () => {
    const { code, verifier } = await obtainCode(server, client);
    const first = await exchangeCode(server, client, code, verifier);
    assert.equal(first.status, 200);
    const tokens = (await first.json()) as { access_token: string; refresh_token: string };
    const gid = grantIdOf(tokens.access_token);
    assert.equal(await isRevoked(gid), false);

    const replay = await exchangeCode(server, client, code, verifier);
    assert.equal(replay.status, 400);
    assert.equal(((await replay.json()) as { error: string }).error, 'invalid_grant');
    assert.equal(await isRevoked(gid), true, 'the proxy is told the grant is revoked');
    const afterReplay = await refresh(tokens.refresh_token);
    assert.equal(afterReplay.status, 400, 'the refresh token issued from the replayed code no longer works');
  });

  describe('DPoP (RFC 9449 §5): bound access and refresh tokens', () => {
    const tokenUrl = () => `${server.publicUrl}/token`;
    const payloadOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    const proofFor = (key: DpopKey, jti?: string) => dpopProof(key, { htm: 'POST', htu: tokenUrl(), ...(jti === undefined ? {} : { jti }) });
    const refreshWith = async (refreshToken: string, proof?: string) =>
      tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id }, proof === undefined ? {} : { dpop: proof });

    async function boundTokens(key: DpopKey): Promise<{ access_token: string; refresh_token: string; token_type: string }> {
      const { code, verifier } = await obtainCode(server, client);
      const response = await tokenRequest(
        server,
        { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: client.redirect_uris[0] ?? '', client_id: client.client_id, resource: server.resource },
        { dpop: await proofFor(key) },
      );
      assert.equal(response.status, 200, await response.clone().text());
      return (await response.json()) as { access_token: string; refresh_token: string; token_type: string };
    }

    it('binds the access token to the proof key (cnf.jkt, token_type DPoP)', async () => {
      const key = await createDpopKey();
      const tokens = await boundTokens(key);
      assert.equal(tokens.token_type, 'DPoP');
      assert.deepEqual(payloadOf(tokens.access_token).cnf, { jkt: key.jkt });
    });

    it("binds a public client's refresh token: refused without a proof or with another key, rotated with the same key", async () => {
      const key = await createDpopKey();
      const tokens = await boundTokens(key);
      const without = await refreshWith(tokens.refresh_token);
      assert.equal(without.status, 400);
      assert.equal(((await without.json()) as { error: string }).error, 'invalid_grant');
      const other = await refreshWith(tokens.refresh_token, await proofFor(await createDpopKey()));
      assert.equal(other.status, 400);
      assert.equal(((await other.json()) as { error: string }).error, 'invalid_grant');
      const same = await refreshWith(tokens.refresh_token, await proofFor(key));
      assert.equal(same.status, 200, await same.clone().text());
      const refreshed = (await same.json()) as { access_token: string; token_type: string };
      assert.equal(refreshed.token_type, 'DPoP');
      assert.deepEqual(payloadOf(refreshed.access_token).cnf, { jkt: key.jkt });
    });

    it('keeps the key binding on a retry inside the grace window: the rotated token is refused without its key, and the retry with it gets the same successor', async () => {
      const key = await createDpopKey();
      const tokens = await boundTokens(key);
      const first = await refreshWith(tokens.refresh_token, await proofFor(key));
      assert.equal(first.status, 200);
      const successor = ((await first.json()) as { refresh_token: string }).refresh_token;
      for (const proof of [undefined, await proofFor(await createDpopKey())]) {
        const thief = await refreshWith(tokens.refresh_token, proof);
        assert.equal(thief.status, 400, 'a retry is still a refresh of a bound token');
        assert.equal(((await thief.json()) as { error: string }).error, 'invalid_grant');
      }
      const retry = await refreshWith(tokens.refresh_token, await proofFor(key));
      assert.equal(retry.status, 200, await retry.clone().text());
      const retried = (await retry.json()) as { refresh_token: string; access_token: string };
      assert.equal(retried.refresh_token, successor);
      assert.deepEqual(payloadOf(retried.access_token).cnf, { jkt: key.jkt });
    });

    it('lets exactly one of two concurrent uses of one proof or client assertion jti through, on every replica (atomic replay check)', async () => {
      const replay = server.provider.ReplayDetection as { unique(iss: string, jti: string, exp: number): Promise<boolean> };
      const exp = Math.floor(Date.now() / 1000) + 60;
      const jti = randomUUID();
      const outcomes = await Promise.all([replay.unique('https://client.example', jti, exp), replay.unique('https://client.example', jti, exp)]);
      assert.deepEqual(outcomes.sort(), [false, true]);
      assert.equal(await replay.unique('https://client.example', jti, exp), false, 'and it stays used');
      assert.equal(await replay.unique('https://other.example', jti, exp), true, 'a jti is unique per issuer');
    });

    it('refuses a proof another client already used: a proof is used once, whoever presents it (RFC 9449 §11.1)', async () => {
      // oidc-provider keys its replay record on the client: a proof spent by one client was new to every other.
      const key = await createDpopKey();
      const tokens = await boundTokens(key);
      const proof = await proofFor(key);
      assert.equal((await refreshWith(tokens.refresh_token, proof)).status, 200);
      const other = await registerPublicClient(server);
      const { code, verifier } = await obtainCode(server, other);
      const exchange = (dpop: string) =>
        tokenRequest(
          server,
          { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: other.redirect_uris[0] ?? '', client_id: other.client_id, resource: server.resource },
          { dpop },
        );
      const replayed = await exchange(proof);
      assert.equal(replayed.status, 400, await replayed.clone().text());
      assert.equal(((await replayed.json()) as { error: string }).error, 'invalid_dpop_proof');
      // Refused for its proof: the code is not spent, and the other client's own proof of the same key still works.
      assert.equal((await exchange(await proofFor(key))).status, 200);
    });

    it('refuses a replayed proof, an HS256 proof and a proof with a private key', async () => {
      const key = await createDpopKey();
      const tokens = await boundTokens(key);
      const proof = await proofFor(key);
      assert.equal((await refreshWith(tokens.refresh_token, proof)).status, 200);
      const replayed = await refreshWith(tokens.refresh_token, proof);
      assert.equal(replayed.status, 400);
      const hs256 = unsignedJwt({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: 'c2VjcmV0' } }, { htm: 'POST', htu: tokenUrl(), jti: randomUUID(), iat: Math.floor(Date.now() / 1000) }, 'c2ln');
      const privateJwk = await dpopProof(key, { htm: 'POST', htu: tokenUrl(), header: { jwk: await exportJWK(key.privateKey) } });
      for (const bad of [hs256, privateJwk]) {
        const response = await refreshWith(tokens.refresh_token, bad);
        assert.equal(response.status, 400);
        assert.equal(((await response.json()) as { error: string }).error, 'invalid_dpop_proof');
      }
    });
  });

  it('refuses an expired code', async () => {
    const { code, verifier } = await obtainCode(server, client);
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    mock.timers.tick(61_000);
    const response = await exchangeCode(server, client, code, verifier);
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: string }).error, 'invalid_grant');
  });

  it('allows a retried refresh within the grace window, and revokes the grant on reuse after it', async () => {
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const tokens = await obtainTokens(server, client);
    const gid = grantIdOf(tokens.access_token);

    const rotated = await refresh(tokens.refresh_token);
    assert.equal(rotated.status, 200);
    const second = (await rotated.json()) as { refresh_token: string };
    assert.notEqual(second.refresh_token, tokens.refresh_token);

    mock.timers.tick(5_000);
    const retry = await refresh(tokens.refresh_token);
    assert.equal(retry.status, 200, 'a retry inside the grace window succeeds');
    await retry.body?.cancel();
    assert.equal(await isRevoked(gid), false);

    mock.timers.tick(10_000);
    const reuse = await refresh(tokens.refresh_token);
    assert.equal(reuse.status, 400);
    assert.equal(((await reuse.json()) as { error: string }).error, 'invalid_grant');
    assert.equal(await isRevoked(gid), true, 'reuse after the window revokes the whole grant');
    const legit = await refresh(second.refresh_token);
    assert.equal(legit.status, 400, 'every token of the grant is dead, including the newest one');
  });

  it('lets two parallel refreshes with the same token both succeed inside the grace window, with one successor', async () => {
    const tokens = await obtainTokens(server, client);
    const results = await Promise.all([refresh(tokens.refresh_token), refresh(tokens.refresh_token)]);
    assert.deepEqual(results.map((response) => response.status), [200, 200]);
    const bodies = (await Promise.all(results.map((response) => response.json()))) as Array<{ refresh_token: string }>;
    assert.equal(bodies[0]?.refresh_token, bodies[1]?.refresh_token, 'one chain, not two');
    assert.equal(await isRevoked(grantIdOf(tokens.access_token)), false);
  });

  it('answers a retry inside the grace window with the same refresh token and an access token of the same grant (RFC 9700 §4.14.2)', async () => {
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const tokens = await obtainTokens(server, client);
    const gid = grantIdOf(tokens.access_token);
    const victim = (await (await refresh(tokens.refresh_token)).json()) as { refresh_token: string; access_token: string };

    mock.timers.tick(5_000);
    const retried = await refresh(tokens.refresh_token);
    assert.equal(retried.status, 200);
    const attacker = (await retried.json()) as { refresh_token: string; access_token: string };
    assert.equal(attacker.refresh_token, victim.refresh_token, 'the retry gets the same successor, not a second chain');
    assert.equal(grantIdOf(attacker.access_token), gid);
    assert.notEqual(attacker.access_token, victim.access_token);
    // Only one live refresh token remains for the grant: the successor both hold. The grant keeps two records, the
    // consumed original and the successor (the token the retry minted was destroyed), read as oidc-provider reads them.
    const refreshTokens = new (createOidcAdapter(server.store, systemClock))('RefreshToken');
    assert.equal((await server.store.findByIndex('oidc:RefreshToken', 'grantId', gid)).length, 2);
    assert.notEqual((await refreshTokens.find(tokens.refresh_token))?.consumed, undefined);
    assert.equal((await refreshTokens.find(victim.refresh_token))?.consumed, undefined);

    // One party moves the chain on; the other, falling behind, presents the old successor after its window: all ends.
    const moved = (await (await refresh(victim.refresh_token)).json()) as { refresh_token: string };
    mock.timers.tick(11_000);
    const behind = await refresh(attacker.refresh_token);
    assert.equal(behind.status, 400);
    assert.equal(((await behind.json()) as { error: string }).error, 'invalid_grant');
    assert.equal(await isRevoked(gid), true, 'reuse of the old successor ends the grant at the gateway too');
    const newest = await refresh(moved.refresh_token);
    assert.equal(newest.status, 400, 'the newest token of the chain is dead as well');
    await newest.body?.cancel();
  });

    it('expires an idle refresh token', async () => {
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const tokens = await obtainTokens(server, client);
    mock.timers.tick((14 * 24 * 3600 + 60) * 1000);
    const response = await refresh(tokens.refresh_token);
    assert.equal(response.status, 400);
  });

  it('revokes a refresh token and its grant (RFC 7009)', async () => {
    const tokens = await obtainTokens(server, client);
    const gid = grantIdOf(tokens.access_token);
    const response = await fetch(`${server.publicUrl}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token, client_id: client.client_id }).toString(),
    });
    assert.equal(response.status, 200);
    assert.equal(await isRevoked(gid), true);
    assert.equal((await refresh(tokens.refresh_token)).status, 400);
  });

  it('revokes the grant of a JWT access token at /revoke (RFC 7009; details in access-token-revocation.test.ts)', async () => {
    const tokens = await obtainTokens(server, client);
    const response = await fetch(`${server.publicUrl}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.access_token, client_id: client.client_id }).toString(),
    });
    assert.equal(response.status, 200);
    assert.equal(await isRevoked(grantIdOf(tokens.access_token)), true);
    assert.equal((await refresh(tokens.refresh_token)).status, 400);
  });

    it('answers introspection only for pre-registered confidential clients (RFC 7662 §4)', async () => {
    const tokens = await obtainTokens(server, client);
    const asPublic = await fetch(`${server.publicUrl}/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token, client_id: client.client_id }).toString(),
    });
    const publicBody = (await asPublic.json()) as Record<string, unknown>;
    assert.notEqual(publicBody.active, true, 'a public client learns nothing');

    const basic = basicAuthorization(CONFIDENTIAL_CLIENT.clientId, CONFIDENTIAL_CLIENT.clientSecret);
    const asBackend = await fetch(`${server.publicUrl}/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
      body: new URLSearchParams({ token: tokens.refresh_token }).toString(),
    });
    assert.equal(asBackend.status, 200, await asBackend.clone().text());
    const body = (await asBackend.json()) as Record<string, unknown>;
    assert.equal(body.active, true);
    assert.equal(body.client_id, client.client_id);

    const wrongSecret = basicAuthorization(CONFIDENTIAL_CLIENT.clientId, 'not-the-secret-value-000000');
    const refused = await fetch(`${server.publicUrl}/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: wrongSecret },
      body: new URLSearchParams({ token: tokens.refresh_token }).toString(),
    });
    assert.equal(refused.status, 401);
  });

  it('introspects its own JWT access tokens (RFC 7662 §2.2): active with their claims, then inactive once revoked; never unsupported_token_type', async () => {
    const tokens = await obtainTokens(server, client);
    const introspect = async (token: string, authorization?: string, extra: Record<string, string> = {}) => {
      const response = await fetch(`${server.publicUrl}/introspect`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization === undefined ? {} : { authorization }) },
        body: new URLSearchParams({ token, ...extra }).toString(),
      });
      assert.equal(response.status, 200, await response.clone().text());
      assert.match(response.headers.get('cache-control') ?? '', /no-store/);
      return (await response.json()) as Record<string, unknown>;
    };
    const basic = basicAuthorization(CONFIDENTIAL_CLIENT.clientId, CONFIDENTIAL_CLIENT.clientSecret);
    const claims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    for (const hint of [{}, { token_type_hint: 'access_token' }, { token_type_hint: 'refresh_token' }] as Array<Record<string, string>>) {
      const active = await introspect(tokens.access_token, basic, hint);
      assert.equal(active.active, true);
      assert.equal(active.client_id, client.client_id);
      assert.equal(active.sub, claims.sub);
      assert.deepEqual(active.aud, claims.aud);
      assert.equal(active.scope, claims.scope);
      assert.equal(active.exp, claims.exp);
      assert.equal(active.iss, server.publicUrl);
      assert.equal(active.token_type, 'Bearer');
    }
    // A public client (no introspection right), a forged token and an unsigned one learn nothing.
    assert.deepEqual(await introspect(tokens.access_token, undefined, { client_id: client.client_id }), { active: false });
    const [header, payload] = tokens.access_token.split('.');
    assert.deepEqual(await introspect(`${header}.${payload}.${'A'.repeat(86)}`, basic), { active: false });
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${payload}.`;
    assert.deepEqual(await introspect(none, basic), { active: false });
    await fetch(`${server.publicUrl}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token, client_id: client.client_id }).toString(),
    });
    assert.deepEqual(await introspect(tokens.access_token, basic), { active: false });
  });

  it('never logs tokens or codes', async () => {
    const tokens = await obtainTokens(server, client);
    const logs = server.logs.text();
    assert.ok(!logs.includes(tokens.access_token));
    assert.ok(!logs.includes(tokens.refresh_token));
    assert.ok(!logs.includes('upstream-access-token-value'));
  });
});
