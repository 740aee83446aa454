import assert from 'node:assert/strict';
import { X509Certificate, createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { generate } from 'selfsigned';
import type { ServerMetadata } from 'openid-client';
import { ManualClock } from '../../src/runtime/clock.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { createUpstreamClientAuth, JWT_BEARER_CLIENT_ASSERTION_TYPE } from '../../src/upstream/client-auth/create-client-auth.ts';
import { createFederatedAssertionProvider } from '../../src/upstream/client-auth/federated-assertion.ts';

const TOKEN_ENDPOINT = 'https://login.example.test/tenant/oauth2/v2.0/token';
const as = { issuer: 'https://login.example.test/tenant/v2.0', token_endpoint: TOKEN_ENDPOINT } as ServerMetadata;
const { privateKey: assertionKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

/** A service-account-style JWT that expires `ttlSeconds` after the clock's now. */
async function platformToken(clock: ManualClock, ttlSeconds: number, subject = 'system:serviceaccount:gatehouse:gatehouse'): Promise<string> {
  const now = Math.floor(clock.now() / 1000);
  return new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject(subject).setIssuedAt(now).setExpirationTime(now + ttlSeconds).sign(assertionKey);
}

async function authenticate(clientAuth: ReturnType<typeof createUpstreamClientAuth>['clientAuth']) {
  const body = new URLSearchParams({ grant_type: 'authorization_code' });
  const headers = new Headers();
  await clientAuth(as, { client_id: 'app-id' }, body, headers);
  return { body, headers };
}

describe('federated client assertions', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-federated-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the projected token file on every use, so a rotated file is picked up without a restart', async () => {
    const clock = new ManualClock();
    const file = join(dir, 'token');
    const first = await platformToken(clock, 3600, 'first');
    await writeFile(file, `${first}\n`);
    const auth = createUpstreamClientAuth({ method: 'federated', tokenFile: file, audience: 'api://AzureADTokenExchange' }, {
      clientId: 'app-id', clock, random: cryptoRandom, fetch, timeoutMs: 1000, env: {},
    });
    const one = await authenticate(auth.clientAuth);
    assert.equal(one.body.get('client_assertion_type'), JWT_BEARER_CLIENT_ASSERTION_TYPE);
    assert.equal(one.body.get('client_assertion'), first);
    assert.equal(one.body.get('client_id'), 'app-id');
    assert.equal(one.body.has('client_secret'), false);

    const second = await platformToken(clock, 3600, 'second');
    await writeFile(file, second);
    assert.equal((await authenticate(auth.clientAuth)).body.get('client_assertion'), second);
  });

  it('falls back to AZURE_FEDERATED_TOKEN_FILE and refuses a file whose token has expired', async () => {
    const clock = new ManualClock();
    const file = join(dir, 'env-token');
    await writeFile(file, await platformToken(clock, 600));
    const auth = createUpstreamClientAuth({ method: 'federated', audience: 'api://AzureADTokenExchange' }, {
      clientId: 'app-id', clock, random: cryptoRandom, fetch, timeoutMs: 1000, env: { AZURE_FEDERATED_TOKEN_FILE: file },
    });
    assert.ok((await authenticate(auth.clientAuth)).body.get('client_assertion'));
    clock.advance(601_000);
    await assert.rejects(authenticate(auth.clientAuth), { code: 'server_error', message: /expired/ });
  });

  it('caches a fetched assertion only until shortly before its exp, then fetches a new one', async () => {
    const clock = new ManualClock();
    let fetched = 0;
    const provider = createFederatedAssertionProvider({
      clock,
      refreshBeforeExpiryMs: 120_000,
      source: { kind: 'test', fetchAssertion: async () => { fetched += 1; return platformToken(clock, 600, `n${fetched}`); } },
    });
    const first = await provider.getAssertion();
    clock.advance(400_000);
    assert.equal(await provider.getAssertion(), first, 'still well before exp');
    clock.advance(90_000); // 490 s: within two minutes of the 600 s exp
    const second = await provider.getAssertion();
    assert.notEqual(second, first);
    assert.equal(decodeJwt(second).sub, 'n2');
    assert.equal(fetched, 2);
  });

  it('is never fetched at construction, and concurrent callers share one fetch', async () => {
    const clock = new ManualClock();
    let fetched = 0;
    const provider = createFederatedAssertionProvider({
      clock,
      source: { kind: 'test', fetchAssertion: async () => { fetched += 1; return platformToken(clock, 600); } },
    });
    assert.equal(fetched, 0);
    const [a, b] = await Promise.all([provider.getAssertion(), provider.getAssertion()]);
    assert.equal(a, b);
    assert.equal(fetched, 1);
  });

  it('asks App Service managed identity and IMDS for the token-exchange audience with their required headers', async () => {
    const clock = new ManualClock();
    const calls: Array<{ url: URL; headers: Headers }> = [];
    const token = await platformToken(clock, 3600);
    const fakeFetch: typeof fetch = async (input, init) => {
      calls.push({ url: new URL(String(input)), headers: new Headers(init?.headers) });
      return Response.json({ access_token: token, expires_on: String(Math.floor(clock.now() / 1000) + 3600) });
    };
    const deps = { clientId: 'app-id', clock, random: cryptoRandom, fetch: fakeFetch, timeoutMs: 1000 };
    const config = { method: 'federated', managedIdentityClientId: 'mi-client', audience: 'api://AzureADTokenExchange' } as const;
    const appService = createUpstreamClientAuth(config, { ...deps, env: { IDENTITY_ENDPOINT: 'http://127.0.0.1:41000/msi/token', IDENTITY_HEADER: 'h-value' } });
    assert.equal((await authenticate(appService.clientAuth)).body.get('client_assertion'), token);
    const imds = createUpstreamClientAuth(config, { ...deps, env: {} });
    await authenticate(imds.clientAuth);

    const [first, second] = calls;
    assert.equal(first?.url.origin + first!.url.pathname, 'http://127.0.0.1:41000/msi/token');
    assert.equal(first?.headers.get('x-identity-header'), 'h-value');
    assert.equal(first?.url.searchParams.get('resource'), 'api://AzureADTokenExchange');
    assert.equal(first?.url.searchParams.get('client_id'), 'mi-client');
    assert.equal(second?.url.host, '169.254.169.254');
    assert.equal(second?.headers.get('metadata'), 'true');
    assert.equal(second?.url.searchParams.get('resource'), 'api://AzureADTokenExchange');
  });

  it('refuses a federated configuration with nowhere to get the assertion from, at construction', () => {
    assert.throws(
      () => createUpstreamClientAuth({ method: 'federated', audience: 'api://AzureADTokenExchange' }, {
        clientId: 'app-id', clock: new ManualClock(), random: cryptoRandom, fetch, timeoutMs: 1000, env: {},
      }),
      /method federated needs a token source — set tokenFile/,
    );
  });
});

describe('private_key_jwt', () => {
  it('signs a short-lived assertion for the token endpoint with a fresh jti and the certificate thumbprint', async () => {
    const pems = await generate([{ name: 'commonName', value: 'gatehouse' }], { keyType: 'ec', algorithm: 'sha256' });
    const clock = new ManualClock(Date.now());
    const read = (path: string) => (path === 'key.pem' ? pems.private : pems.cert);
    const auth = createUpstreamClientAuth({ method: 'private_key_jwt', privateKeyFile: 'key.pem', certificateFile: 'cert.pem' }, {
      clientId: 'app-id', clock, random: cryptoRandom, fetch, timeoutMs: 1000, readTextFile: read,
    });
    const one = (await authenticate(auth.clientAuth)).body.get('client_assertion') ?? '';
    const two = (await authenticate(auth.clientAuth)).body.get('client_assertion') ?? '';
    const header = decodeProtectedHeader(one);
    const expectedThumbprint = createHash('sha256').update(new X509Certificate(pems.cert).raw).digest('base64url');
    assert.equal(header['x5t#S256'], expectedThumbprint);
    assert.equal(header.alg, 'ES256');
    const publicKey = new X509Certificate(pems.cert).publicKey;
    const { payload } = await jwtVerify(one, publicKey, { audience: TOKEN_ENDPOINT, issuer: 'app-id', subject: 'app-id', currentDate: new Date(clock.now()) });
    assert.ok((payload.exp ?? 0) - (payload.iat ?? 0) <= 300, 'short-lived');
    assert.notEqual(decodeJwt(two).jti, payload.jti);
  });

  it('fails at construction when the certificate does not belong to the key', async () => {
    const a = await generate([{ name: 'commonName', value: 'a' }], { keyType: 'ec', algorithm: 'sha256' });
    const b = await generate([{ name: 'commonName', value: 'b' }], { keyType: 'ec', algorithm: 'sha256' });
    assert.throws(() =>
      createUpstreamClientAuth({ method: 'private_key_jwt', privateKeyFile: 'key', certificateFile: 'cert' }, {
        clientId: 'app-id', clock: new ManualClock(), random: cryptoRandom, fetch, timeoutMs: 1000,
        readTextFile: (path) => (path === 'key' ? a.private : b.cert),
      }),
      /does not match/,
    );
  });
});
