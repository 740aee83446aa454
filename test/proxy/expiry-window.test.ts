import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { createIdentityAssertionSigner, MIN_ASSERTION_LIFETIME_SECONDS } from '../../src/proxy/identity-assertion.ts';
import { ACCESS_TOKEN_CLOCK_SKEW_SECONDS, type AccessTokenClaims } from '../../src/proxy/verify-access-token.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * Regression: the bearer check tolerates clock skew after `exp`, and the identity assertion used to be capped at the
 * token's `exp`, so inside that window the backend received an already-expired assertion and the client got 502
 * instead of a 401 that makes it refresh.
 */
const keyring = createTestKeyring();
const clock = new ManualClock(Date.now());
let gateway: TestGateway;
let backend: Server;
const seen: IncomingHttpHeaders[] = [];

before(async () => {
  backend = createServer((req, res) => {
    seen.push(req.headers);
    req.resume().once('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}'));
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({ keyring, clock, config: { routes: [{ path: '/mcp', backend: `${origin}/mcp` }] } });
});
after(async () => {
  await gateway?.close();
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

describe('an access token just past its exp', () => {
  it('is forwarded with an assertion that is still valid inside the skew window, then refused with 401', async () => {
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp`, expiresIn: 60 });
    const { exp } = decodeJwt(token);
    assert.ok(exp);
    // Just past exp, inside the tolerated skew.
    clock.set((exp + ACCESS_TOKEN_CLOCK_SKEW_SECONDS - 1) * 1000);
    const inside = await mcpPost(`${gateway.url}/mcp`, token, toolsCall('echo'));
    await inside.text();
    assert.equal(inside.status, 200);
    const assertion = seen.at(-1)?.authorization?.replace(/^Bearer /, '');
    assert.ok(assertion);
    // What a backend does: verify the assertion at the current time, without any tolerance of its own.
    const { payload } = await jwtVerify(assertion, createLocalJWKSet(keyring.publicJwks()), {
      audience: `${gateway.url}/mcp`,
      currentDate: new Date(clock.now()),
    });
    assert.ok(payload.exp! > clock.now() / 1000, 'the assertion has not expired');

    clock.set((exp + ACCESS_TOKEN_CLOCK_SKEW_SECONDS) * 1000);
    const past = await mcpPost(`${gateway.url}/mcp`, token, toolsCall('echo'));
    await past.text();
    assert.equal(past.status, 401);
    assert.match(past.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
  });
});

describe('assertion lifetime', () => {
  const claims = (exp: number): AccessTokenClaims => ({ sub: 'tenant/alice', clientId: 'c', scopes: ['mcp:tools'], grantId: `g-${exp}`, jti: 'j', exp });
  const signerAt = (now: number) => createIdentityAssertionSigner({ keyring, issuer: 'https://gw.example', clock: new ManualClock(now), random: cryptoRandom });
  const now = Date.UTC(2026, 0, 1);
  const nowSeconds = now / 1000;
  const lifetimeOf = async (tokenExp: number, ttlSeconds: number) => {
    const { jwt } = await signerAt(now).assertionFor({ claims: claims(tokenExp), account: undefined, audience: 'https://gw.example/mcp', ttlSeconds });
    const { exp, iat } = decodeJwt(jwt);
    assert.equal(iat, nowSeconds);
    return exp! - nowSeconds;
  };

  it('ends with the access token when the token outlives the minimum', async () => {
    assert.equal(await lifetimeOf(nowSeconds + 40, 120), 40);
  });
  it('is bounded by the route TTL', async () => {
    assert.equal(await lifetimeOf(nowSeconds + 600, 120), 120);
  });
  it('lives the minimum lifetime when the token has expired within the skew window', async () => {
    assert.equal(await lifetimeOf(nowSeconds - 2, 120), MIN_ASSERTION_LIFETIME_SECONDS);
    assert.equal(await lifetimeOf(nowSeconds + 1, 120), MIN_ASSERTION_LIFETIME_SECONDS);
  });
  it('never exceeds a route TTL shorter than the minimum', async () => {
    assert.equal(await lifetimeOf(nowSeconds - 2, 5), 5);
  });
  it('is forwarded as `Bearer <the same assertion>`, signed once for both forms until it is renewed', async () => {
    const clock = new ManualClock(now);
    const signer = createIdentityAssertionSigner({ keyring, issuer: 'https://gw.example', clock, random: cryptoRandom });
    const input = { claims: claims(nowSeconds + 40), account: undefined, audience: 'https://gw.example/mcp', ttlSeconds: 120 };
    const { authorization } = await signer.assertionFor(input);
    const { jwt } = await signer.assertionFor(input);
    assert.equal(authorization, `Bearer ${jwt}`);
    assert.equal((await signer.assertionFor(input)).authorization, authorization);
    // Three quarters of its 40 s gone: renewed, both forms together.
    clock.set(now + 31_000);
    const renewed = (await signer.assertionFor(input)).authorization;
    assert.notEqual(renewed, authorization);
    assert.equal(renewed, `Bearer ${(await signer.assertionFor(input)).jwt}`);
  });
});
