import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnusableTokenAnswer, UpstreamError } from '../../src/upstream/errors.ts';
import { createFakeEntra } from './support/fake-entra.ts';
import { createGatewaySide } from './support/fixture.ts';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const GLOBAL = 'https://login.microsoftonline.com';
const SECRET_TOKEN = 'eyJ0eXAiOiJKV1QifQ.c2VjcmV0LXBheWxvYWQ.c2ln-the-token-itself';

/**
 * The identity provider's token answer, checked once for the broker's refresh and exchange (and sign-in): an answer
 * that is not a usable Bearer access token is the IdP answering wrongly — a 502 with a generic description and a log
 * line naming what was wrong — not an outage remembered for 5 s (503), and never a token forwarded as it came: an
 * already-expired one (expires_in 0 or 1), a DPoP-bound one as Bearer, one of megabytes the backend answers 431 to.
 */
describe("the identity provider's token answer", () => {
  async function setUp() {
    const fake = await createFakeEntra({ authority: GLOBAL, tenant: TENANT, discoveryIssuer: `${GLOBAL}/${TENANT}/v2.0`, clientId: 'app-id' });
    const gateway = await createGatewaySide({
      fetch: fake.fetch,
      upstream: {
        type: 'entra',
        entra: { tenantId: TENANT, authority: GLOBAL, allowedTenants: [] },
        clientId: 'app-id',
        clientAuth: { method: 'client_secret_post', clientSecret: 'fallback-secret' },
        scopes: ['openid', 'profile', 'offline_access', 'api://app-id/.default'],
      },
    });
    return { fake, gateway };
  }
  const obo = { subjectToken: 'user-at', audience: 'https://graph.microsoft.com', scopes: ['User.Read'], grant: 'on-behalf-of' as const };
  const answer = (body: Record<string, unknown>) => () => Response.json({ token_type: 'Bearer', access_token: SECRET_TOKEN, expires_in: 3600, ...body });
  const withoutKey = (key: string) => () => {
    const body: Record<string, unknown> = { token_type: 'Bearer', access_token: SECRET_TOKEN, expires_in: 3600 };
    delete body[key];
    return Response.json(body);
  };
  const expiredJwt = `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify({ exp: Math.floor(Date.now() / 1000) - 10 })).toString('base64url')}.sig`;

  const unusable: Array<{ name: string; respond: () => Response; problem: RegExp; downstreamOnly?: true }> = [
    { name: 'expires_in 0', respond: answer({ expires_in: 0 }), problem: /expires_in is not a positive integer/ },
    { name: 'expires_in 1', respond: answer({ expires_in: 1 }), problem: /lives less than 60 s/, downstreamOnly: true },
    { name: 'expires_in 1.5', respond: answer({ expires_in: 1.5 }), problem: /expires_in is not a positive integer/ },
    { name: 'a JWT already past its exp', respond: answer({ access_token: expiredJwt }), problem: /lives less than 60 s/, downstreamOnly: true },
    { name: 'expires_in -5', respond: answer({ expires_in: -5 }), problem: /expires_in/ },
    { name: 'expires_in null', respond: answer({ expires_in: null }), problem: /expires_in/ },
    { name: 'expires_in "abc"', respond: answer({ expires_in: 'abc' }), problem: /expires_in/ },
    { name: 'a 200 of HTML', respond: () => new Response('<html><body>Sign in to the proxy</body></html>', { status: 200, headers: { 'content-type': 'text/html' } }), problem: /./ },
    { name: 'no access_token', respond: withoutKey('access_token'), problem: /access_token/ },
    { name: 'no token_type', respond: withoutKey('token_type'), problem: /token_type/ },
    { name: 'token_type DPoP', respond: answer({ token_type: 'DPoP' }), problem: /token_type is not Bearer/ },
    { name: 'token_type N_A (RFC 8693: not an access token)', respond: answer({ token_type: 'N_A', issued_token_type: 'urn:ietf:params:oauth:token-type:id_token' }), problem: /token_type/ },
    { name: 'an access token of 5 MB', respond: answer({ access_token: 'a'.repeat(5 * 1024 * 1024) }), problem: /./, downstreamOnly: true },
    { name: 'an access token of 17 KiB', respond: answer({ access_token: 'a'.repeat(17 * 1024) }), problem: /larger than 16384 bytes/, downstreamOnly: true },
    { name: 'an access token with a line break', respond: answer({ access_token: 'abc\r\nX-Injected: 1' }), problem: /VSCHAR/ },
  ];

  for (const { name, respond, problem, downstreamOnly } of unusable) {
    it(`${name}: a 502 with a generic description, the log naming what was wrong (exchange${downstreamOnly ? '' : ' and refresh'})`, async () => {
      const { fake, gateway } = await setUp();
      try {
        const calls = [() => gateway.client.exchangeForDownstream(obo), ...(downstreamOnly ? [] : [() => gateway.client.refresh('rt')])];
        for (const call of calls) {
          fake.nextResponse = respond;
          await assert.rejects(call(), (error: unknown) => {
            assert.ok(error instanceof UpstreamError, String(error));
            assert.equal(error.code, 'server_error');
            assert.equal(error.status, 502);
            assert.match(error.message, /is not a usable access token/);
            assert.doesNotMatch(error.message, /html|proxy|the-token-itself/i);
            return true;
          });
        }
        const refusals = gateway.logs.lines().filter((line) => line.msg === 'upstream token answer refused: not a usable access token');
        assert.deepEqual(refusals.map((line) => line.operation), downstreamOnly ? ['on-behalf-of'] : ['on-behalf-of', 'refresh']);
        for (const line of refusals) assert.match(String(line.problem), problem);
        assert.ok(!gateway.logs.text().includes('the-token-itself'), 'never the token');
      } finally {
        await gateway.store.close();
      }
    });
  }

  it('takes a Bearer answer in any case, with expires_in as a string (Entra v1) or absent (an hour)', async () => {
    const { fake, gateway } = await setUp();
    try {
      fake.nextResponse = answer({ token_type: 'bearer', expires_in: '3599' });
      const lowercase = await gateway.client.exchangeForDownstream(obo);
      assert.equal(lowercase.accessToken, SECRET_TOKEN);
      assert.ok(lowercase.expiresAt > Date.now() + 3_500_000);
      fake.nextResponse = withoutKey('expires_in');
      assert.ok((await gateway.client.refresh('rt')).expiresAt > Date.now() + 3_500_000);
      fake.nextResponse = answer({ expires_in: 60 });
      await gateway.client.exchangeForDownstream(obo);
    } finally {
      await gateway.store.close();
    }
  });

  it("holds the user's own upstream token to neither the 16 KiB header cap nor the 60 s floor: it travels only as an assertion in a form body", async () => {
    const { fake, gateway } = await setUp();
    try {
      // Keycloak and Okta put every group in the access token; an IdP may issue tokens that live a minute or less.
      const large = `${'g'.repeat(40 * 1024)}`;
      fake.nextResponse = answer({ access_token: large, expires_in: 30, refresh_token: 'rt-2' });
      const refreshed = await gateway.client.refresh('rt');
      assert.equal(refreshed.accessToken, large);
      assert.equal(refreshed.refreshToken, 'rt-2');
      assert.ok(refreshed.expiresAt > Date.now() + 20_000 && refreshed.expiresAt <= Date.now() + 30_000);
      fake.nextResponse = answer({ expires_in: 1 });
      assert.equal((await gateway.client.refresh('rt')).accessToken, SECRET_TOKEN);
      // What must hold still holds: a Bearer token, present, of VSCHARs.
      // And at sign-in: the user could not sign in at all.
      fake.answerWith = { access_token: large, expires_in: 30 };
      fake.idTokenClaims = () => ({ iss: `${GLOBAL}/${TENANT}/v2.0`, tid: TENANT, oid: 'user-oid', ver: '2.0', name: 'Adele', sub: 'pairwise' });
      const started = await gateway.client.beginSignIn({ interactionId: 'large-groups' });
      fake.rememberNonce(started.authorizationUrl);
      const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
      const signedIn = await gateway.client.completeSignIn({ callbackUrl: new URL(`http://127.0.0.1:8080/callback?code=c1&state=${state}`), stateCookie: started.stateCookie });
      assert.equal(signedIn.tokens.accessToken, large);
      delete fake.answerWith;
      for (const body of [{ token_type: 'DPoP' }, { access_token: 'abc\r\nX-Injected: 1' }]) {
        fake.nextResponse = answer(body);
        await assert.rejects(gateway.client.refresh('rt'), (error: unknown) => error instanceof UpstreamError && error.status === 502);
      }
    } finally {
      await gateway.store.close();
    }
  });

  // Refused by Gatehouse's own checks (DPoP), and by openid-client's before them (the rest): rotated either way.
  const rotating: Array<{ name: string; body: Record<string, unknown>; without?: string }> = [
    { name: 'token_type DPoP', body: { token_type: 'DPoP' } },
    { name: 'token_type N_A', body: { token_type: 'N_A' } },
    { name: 'no token_type', body: {}, without: 'token_type' },
    { name: 'no access_token', body: {}, without: 'access_token' },
    { name: 'expires_in -5', body: { expires_in: -5 } },
    { name: 'expires_in null', body: { expires_in: null } },
    { name: 'expires_in "abc"', body: { expires_in: 'abc' } },
  ];
  for (const { name, body, without } of rotating) {
    it(`${name}: hands back the refresh token of the refresh answer it refuses (the IdP has rotated), never logging or serializing it`, async () => {
      const { fake, gateway } = await setUp();
      try {
        fake.nextResponse = () => {
          const refused: Record<string, unknown> = { token_type: 'Bearer', access_token: SECRET_TOKEN, expires_in: 3600, ...body, refresh_token: 'rotated-refresh-token-value' };
          if (without) delete refused[without];
          return Response.json(refused);
        };
        await assert.rejects(gateway.client.refresh('rt'), (error: unknown) => {
          assert.ok(error instanceof UnusableTokenAnswer, String(error));
          assert.equal(error.rotatedRefreshToken(), 'rotated-refresh-token-value');
          assert.ok(!JSON.stringify(error).includes('rotated-refresh-token-value'));
          assert.ok(!Object.values(error).some((value) => String(value).includes('rotated-refresh-token-value')));
          return true;
        });
        assert.ok(!gateway.logs.text().includes('rotated-refresh-token-value'));
      } finally {
        await gateway.store.close();
      }
    });
  }

  it('takes no refresh token from a refused answer whose refresh_token is not a non-empty string', async () => {
    const { fake, gateway } = await setUp();
    try {
      for (const refreshToken of ['', 42, { value: 'x' }]) {
        fake.nextResponse = answer({ token_type: 'N_A', refresh_token: refreshToken });
        await assert.rejects(gateway.client.refresh('rt'), (error: unknown) => error instanceof UnusableTokenAnswer && error.rotatedRefreshToken() === undefined);
      }
    } finally {
      await gateway.store.close();
    }
  });

  it('answers as docs/entra.md says: a WAF page on refresh is the 502 of an unusable answer; at sign-in, its own checks a 502, an unreadable answer an outage', async () => {
    const { fake, gateway } = await setUp();
    try {
      fake.nextResponse = () => new Response('<html>Blocked by policy</html>', { status: 403, headers: { 'content-type': 'text/html' } });
      await assert.rejects(gateway.client.refresh('rt'), (error: unknown) => error instanceof UnusableTokenAnswer && error.status === 502);
      assert.ok(gateway.logs.lines().some((line) => line.msg === 'upstream token answer refused: not a usable access token' && line.operation === 'refresh'));

      fake.idTokenClaims = () => ({ iss: `${GLOBAL}/${TENANT}/v2.0`, tid: TENANT, oid: 'user-oid', ver: '2.0', name: 'Adele', sub: 'pairwise' });
      const signIn = async () => {
        const started = await gateway.client.beginSignIn({ interactionId: `i-${Math.random()}` });
        fake.rememberNonce(started.authorizationUrl);
        const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
        return gateway.client.completeSignIn({ callbackUrl: new URL(`http://127.0.0.1:8080/callback?code=c1&state=${state}`), stateCookie: started.stateCookie });
      };
      // docs/entra.md's table, answer by answer (`undefined`: the property left out of the JSON).
      const atSignIn: Array<[Record<string, unknown>, string, number]> = [
        [{ token_type: 'DPoP' }, 'server_error', 502],
        [{ expires_in: 0 }, 'server_error', 502],
        [{ access_token: 'abc\r\nX-Injected: 1' }, 'server_error', 502],
        [{ token_type: 'N_A' }, 'access_denied', 403],
        [{ token_type: undefined }, 'temporarily_unavailable', 503],
        [{ expires_in: -5 }, 'temporarily_unavailable', 503],
        [{ expires_in: 'abc' }, 'temporarily_unavailable', 503],
      ];
      for (const [answerWith, code, status] of atSignIn) {
        fake.answerWith = answerWith;
        await assert.rejects(signIn(), (error: unknown) => error instanceof UpstreamError && error.code === code && error.status === status, JSON.stringify(answerWith));
      }
      delete fake.answerWith;
      fake.nextResponse = () => new Response('<html>Sign in to the proxy</html>', { status: 200, headers: { 'content-type': 'text/html' } });
      await assert.rejects(signIn(), (error: unknown) => error instanceof UpstreamError && error.code === 'temporarily_unavailable' && error.status === 503);
    } finally {
      await gateway.store.close();
    }
  });
});
