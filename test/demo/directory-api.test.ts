import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { startDirectoryApi, type RunningDirectoryApi } from '../../src/demo/directory-api/directory-api.ts';
import type { DirectoryUser } from '../../src/demo/directory-api/graph-shapes.ts';
import { directoryUsersFrom } from '../../src/demo/directory-api/local-users.ts';
import { defaultUsers } from '../../src/demo/local-idp/users.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';

const issuer = 'http://127.0.0.1:9/local-idp';
const audience = 'https://graph.microsoft.com';
const users: DirectoryUser[] = [
  { id: 'alice-id', displayName: 'Alice Example', givenName: 'Alice', surname: 'Example', mail: 'alice@example.test', userPrincipalName: 'alice@example.test', jobTitle: 'Engineer' },
  { id: 'bob-id', displayName: 'Bob Example', userPrincipalName: 'bob@example.test' },
];

describe('demo directory API (Graph stand-in)', () => {
  let api: RunningDirectoryApi;
  let key: CryptoKey;
  let stranger: CryptoKey;

  before(async () => {
    const pair = await generateKeyPair('ES256');
    key = pair.privateKey;
    stranger = (await generateKeyPair('ES256')).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
    api = await startDirectoryApi({ port: 0, issuer, audience, users, jwks: createLocalJWKSet({ keys: [jwk] }) });
  });
  after(async () => {
    await api.close();
  });

  async function token(claims: JWTPayload = {}, options: { signer?: CryptoKey; exp?: string | number } = {}): Promise<string> {
    return new SignJWT({ scp: 'User.Read', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(typeof claims.iss === 'string' ? claims.iss : issuer)
      .setAudience((claims.aud as string | undefined) ?? audience)
      .setSubject(claims.sub ?? 'alice-id')
      .setIssuedAt()
      .setExpirationTime(options.exp ?? '5m')
      .sign(options.signer ?? key);
  }

  async function get(path: string, bearer?: string) {
    const response = await fetch(api.url + path, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
    return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, any> };
  }

  function assertGraphError(body: Record<string, any>, code: string): void {
    assert.equal(body.error.code, code);
    assert.equal(typeof body.error.message, 'string');
    assert.match(body.error.innerError.date, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    assert.match(body.error.innerError['request-id'], /^[0-9a-f-]{36}$/);
  }

  it('answers /v1.0/me in Graph\'s shape for a valid delegated token', async () => {
    const result = await get('/v1.0/me', await token());
    assert.equal(result.status, 200);
    assert.equal(result.body['@odata.context'], 'https://graph.microsoft.com/v1.0/$metadata#users/$entity');
    assert.equal(result.body.id, 'alice-id');
    assert.equal(result.body.displayName, 'Alice Example');
    assert.equal(result.body.givenName, 'Alice');
    assert.equal(result.body.surname, 'Example');
    assert.equal(result.body.mail, 'alice@example.test');
    assert.equal(result.body.userPrincipalName, 'alice@example.test');
    assert.equal(result.body.jobTitle, 'Engineer');
    assert.deepEqual(result.body.businessPhones, []);
    assert.ok(result.headers.get('request-id'));
  });

  it('accepts Entra-style resource-qualified scopes and the oid claim', async () => {
    const result = await get('/v1.0/me', await token({ scp: undefined, scope: 'https://graph.microsoft.com/User.Read', sub: 'pairwise-sub', oid: 'bob-id' }));
    assert.equal(result.status, 200);
    assert.equal(result.body.id, 'bob-id');
    assert.equal(result.body.mail, null);
  });

  it('answers /v1.0/users/{id} for yourself, and for others only with a directory scope', async () => {
    const self = await get('/v1.0/users/alice-id', await token());
    assert.equal(self.status, 200);
    const other = await get('/v1.0/users/bob-id', await token());
    assert.equal(other.status, 403);
    assertGraphError(other.body, 'Authorization_RequestDenied');
    const allowed = await get('/v1.0/users/bob%40example.test', await token({ scp: 'User.Read User.ReadBasic.All' }));
    assert.equal(allowed.status, 200);
    assert.equal(allowed.body.id, 'bob-id');
    const missing = await get('/v1.0/users/nobody', await token({ scp: 'User.Read User.Read.All' }));
    assert.equal(missing.status, 404);
    assertGraphError(missing.body, 'Request_ResourceNotFound');
  });

  it('refuses missing, forged, expired, foreign and wrong-audience tokens with InvalidAuthenticationToken', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<string | undefined> = [
      undefined,
      'garbage',
      await token({}, { signer: stranger }),
      await token({}, { exp: now - 60 }),
      await token({ iss: 'https://login.example.test/other' }),
      await token({ aud: 'api://something-else' }),
    ];
    for (const bearer of cases) {
      const result = await get('/v1.0/me', bearer);
      assert.equal(result.status, 401, `token ${bearer?.slice(0, 12)}`);
      assertGraphError(result.body, 'InvalidAuthenticationToken');
      assert.ok(result.headers.get('www-authenticate'));
    }
  });

  it('refuses a token without User.Read (e.g. app-only) with Authorization_RequestDenied', async () => {
    const result = await get('/v1.0/me', await token({ scp: undefined, roles: ['User.Read.All'] }));
    assert.equal(result.status, 403);
    assertGraphError(result.body, 'Authorization_RequestDenied');
  });

  it('answers unknown paths and methods with Graph-shaped errors, not a crash', async () => {
    const unknown = await get('/v1.0/groups', await token());
    assert.equal(unknown.status, 400);
    assertGraphError(unknown.body, 'BadRequest');
    const post = await fetch(`${api.url}/v1.0/me`, { method: 'POST', headers: { authorization: `Bearer ${await token()}` } });
    assert.equal(post.status, 405);
  });

  it('maps the local identity provider\'s users to directory entries keyed by their object id', () => {
    const local = defaultUsers(cryptoRandom);
    const entries = directoryUsersFrom(local);
    assert.equal(entries.length, local.length);
    for (const [index, entry] of entries.entries()) {
      const user = local[index];
      assert.ok(user);
      assert.equal(entry.id, user.id);
      assert.equal(entry.displayName, user.name);
      assert.equal(entry.mail, user.email);
      assert.ok(!JSON.stringify(entry).includes(user.password), 'no password in a directory entry');
    }
  });
});
