import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID, sign as cryptoSign } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, type JWK as JoseJwk } from 'jose';
import { request as httpRequest } from 'node:http';
import { accessTokenHash, jwkThumbprint } from '../../src/proxy/dpop-proof.ts';
import { after, before, describe, it } from 'node:test';
import { createDpopNonces } from '../../src/keys/dpop-nonces.ts';
import { ManualClock, seconds } from '../../src/runtime/clock.ts';
import { DPOP_SIGNING_ALGS } from '../../src/protocol/dpop.ts';
import { createDpopKey, dpopProof, unsignedJwt, type DpopKey, type ProofFields } from '../support/dpop.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * The gateway as a DPoP resource server (RFC 9449 §7): a hand-driven client sends a valid proof, then proofs that
 * differ from it in one field each. Every refusal is a 401 with the right `WWW-Authenticate` challenge, never a 500.
 */
const keyring = createTestKeyring();
const clock = new ManualClock(Date.now());
let backend: McpBackend;
let gateway: TestGateway;
let key: DpopKey;
const url = (path: string) => gateway.url + path;
const algs = `algs="${DPOP_SIGNING_ALGS.join(' ')}"`;

before(async () => {
  backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
  gateway = await startTestGateway({
    keyring,
    clock,
    config: {
      routes: [
        { path: '/mcp', backend: backend.url },
        { path: '/strict', backend: backend.url, dpop: 'required' },
        { path: '/nonce', backend: backend.url, dpopNonce: true },
      ],
    },
  });
  key = await createDpopKey();
});
after(async () => {
  await gateway?.close();
  await backend?.close();
});

const boundToken = (path = '/mcp', jkt = key.jkt) => mintAccessToken(keyring, gateway.url, { aud: url(path), cnf: { jkt } });

/** A POST to `path` with `Authorization: <scheme> <token>` and, unless `proof` is null, a DPoP proof. */
async function call(path: string, token: string, options: { scheme?: string; proof?: string | null; fields?: Partial<ProofFields>; signer?: DpopKey } = {}) {
  const proof =
    options.proof !== undefined
      ? options.proof
      : await dpopProof(options.signer ?? key, { htm: 'POST', htu: url(path), accessToken: token, iat: seconds(clock.now()), ...options.fields });
  const headers: Record<string, string> = { authorization: `${options.scheme ?? 'DPoP'} ${token}` };
  if (proof !== null) headers.dpop = proof;
  return mcpPost(url(path), undefined, toolsCall('echo', { text: 'hi' }), headers);
}

async function expectRefusal(response: Response, error: string): Promise<string> {
  assert.equal(response.status, 401, `status ${response.status}`);
  const challenge = response.headers.get('www-authenticate') ?? '';
  assert.ok(challenge.includes(`${algs}, error="${error}"`), challenge);
  assert.ok(challenge.includes('resource_metadata="'), challenge);
  const body = (await response.json()) as { error: { message: string } };
  return body.error.message;
}

describe('DPoP-bound tokens at the gateway (RFC 9449 §7)', () => {
  it('accepts a bound token with a valid proof, and never forwards the proof to the backend', async () => {
    const response = await call('/mcp', await boundToken());
    assert.equal(response.status, 200);
    await response.body?.cancel();
    const seen = backend.seenHeaders.at(-1);
    assert.equal(seen?.dpop, undefined);
    assert.doesNotMatch(String(seen?.authorization), /^DPoP/);
  });

  it('accepts an htu that differs only by query, case of scheme and host, or a default port (§4.3 normalisation)', async () => {
    const token = await boundToken();
    const variants = [`${url('/mcp')}?x=1#f`, url('/mcp').replace('http://127.0.0.1', 'HTTP://127.0.0.1')];
    for (const htu of variants) {
      const response = await call('/mcp', token, { fields: { htu } });
      assert.equal(response.status, 200, htu);
      await response.body?.cancel();
    }
  });

  const tampered: Array<[string, (token: string) => Promise<Parameters<typeof call>[2]>, string]> = [
    ['a missing proof', async () => ({ proof: null }), /needs a DPoP proof/.source],
    ['a proof for another URL', async () => ({ fields: { htu: url('/mcp/other') } }), /another URL/.source],
    ['a proof for another method', async () => ({ fields: { htm: 'GET' } }), /another HTTP method/.source],
    ['a proof with a wrong ath', async () => ({ fields: { claims: { ath: 'x'.repeat(43) } } }), /another access token/.source],
    ['a proof without ath', async () => ({ fields: { claims: { ath: undefined } } }), /another access token/.source],
    ['a stale iat', async () => ({ fields: { iat: seconds(clock.now()) - 120 } }), /too old or from the future/.source],
    ['an iat in the future', async () => ({ fields: { iat: seconds(clock.now()) + 120 } }), /too old or from the future/.source],
    ['a proof signed with another key', async () => ({ signer: await createDpopKey() }), /other than the one the token is bound to/.source],
    ['a private key in the jwk header', async () => ({ fields: { header: { jwk: await exportJWK(key.privateKey) } } }), /must be a public key/.source],
    ['typ other than dpop+jwt', async () => ({ fields: { header: { typ: 'JWT' } } }), /typ: dpop\+jwt/.source],
    [
      'alg none',
      async (token) => ({ proof: unsignedJwt({ alg: 'none', typ: 'dpop+jwt', jwk: key.publicJwk }, { htm: 'POST', htu: url('/mcp'), jti: 'n', iat: seconds(clock.now()), ath: token }) }),
      /must be signed with one of/.source,
    ],
    [
      'alg HS256',
      async () => ({ proof: unsignedJwt({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: 'c2VjcmV0' } }, { htm: 'POST', htu: url('/mcp'), jti: 'h', iat: seconds(clock.now()) }, 'c2ln') }),
      /must be signed with one of/.source,
    ],
    ['a proof that is not a JWT', async () => ({ proof: 'not-a-jwt' }), /not a JWT/.source],
    ['a broken signature', async (token) => ({ proof: (await dpopProof(key, { htm: 'POST', htu: url('/mcp'), accessToken: token })).slice(0, -4) + 'AAAA' }), /signature/.source],
  ];
  for (const [name, tamper, message] of tampered) {
    it(`refuses ${name} with 401 invalid_dpop_proof`, async () => {
      const token = await boundToken();
      const described = await expectRefusal(await call('/mcp', token, await tamper(token)), 'invalid_dpop_proof');
      assert.match(described, new RegExp(message));
      assert.ok(!described.includes(token), 'the error never echoes the token');
    });
  }

  it('refuses a replayed proof (same jti) with 401 invalid_dpop_proof', async () => {
    const token = await boundToken();
    const proof = await dpopProof(key, { htm: 'POST', htu: url('/mcp'), accessToken: token, iat: seconds(clock.now()) });
    const first = await call('/mcp', token, { proof });
    assert.equal(first.status, 200);
    await first.body?.cancel();
    assert.match(await expectRefusal(await call('/mcp', token, { proof }), 'invalid_dpop_proof'), /already used/);
  });

  it('refuses a bound token presented as Bearer, naming the DPoP scheme in the challenge (§7.2)', async () => {
    const response = await call('/mcp', await boundToken(), { scheme: 'Bearer' });
    assert.equal(response.status, 401);
    const challenge = response.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer resource_metadata="[^"]+", scope="mcp:tools", error="invalid_token", DPoP algs="/);
    assert.match(((await response.json()) as { error: { message: string } }).error.message, /bound to a DPoP key/);
  });

  it('checks the proof before the scopes, and puts insufficient_scope on the DPoP challenge', async () => {
    const narrow = await mintAccessToken(keyring, gateway.url, { aud: url('/mcp'), cnf: { jkt: key.jkt }, scope: 'profile' });
    await expectRefusal(await call('/mcp', narrow, { proof: null }), 'invalid_dpop_proof');
    const response = await call('/mcp', narrow);
    assert.equal(response.status, 403);
    assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer resource_metadata="[^"]+", scope="mcp:tools", DPoP algs="[^"]+", error="insufficient_scope"$/);
    await response.body?.cancel();
  });

  it('refuses an unbound token presented as DPoP', async () => {
    const unbound = await mintAccessToken(keyring, gateway.url, { aud: url('/mcp') });
    assert.match(await expectRefusal(await call('/mcp', unbound), 'invalid_token'), /not bound to a DPoP key/);
  });

  it('keeps an unbound Bearer token working on a route where DPoP is optional, and offers both challenges', async () => {
    const unbound = await mintAccessToken(keyring, gateway.url, { aud: url('/mcp') });
    const ok = await mcpPost(url('/mcp'), unbound, toolsCall('echo', { text: 'hi' }));
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    const anonymous = await mcpPost(url('/mcp'), undefined, toolsCall('echo'));
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get('www-authenticate'), `Bearer resource_metadata="${gateway.url}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools", DPoP ${algs}`);
    await anonymous.body?.cancel();
  });
});

describe('dpop: required', () => {
  it('refuses an unbound Bearer token with a DPoP challenge only', async () => {
    const unbound = await mintAccessToken(keyring, gateway.url, { aud: url('/strict') });
    const response = await mcpPost(url('/strict'), unbound, toolsCall('echo'));
    assert.equal(response.status, 401);
    assert.equal(
      response.headers.get('www-authenticate'),
      `DPoP resource_metadata="${gateway.url}/.well-known/oauth-protected-resource/strict", scope="mcp:tools", ${algs}, error="invalid_token"`,
    );
    assert.match(((await response.json()) as { error: { message: string } }).error.message, /only DPoP-bound/);
  });

  it('accepts a bound token with its proof', async () => {
    const response = await call('/strict', await boundToken('/strict'));
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });

  it('says so in its protected resource metadata (RFC 9728 §2)', async () => {
    const strict = (await (await fetch(url('/.well-known/oauth-protected-resource/strict'))).json()) as Record<string, unknown>;
    assert.equal(strict.dpop_bound_access_tokens_required, true);
    assert.deepEqual(strict.dpop_signing_alg_values_supported, [...DPOP_SIGNING_ALGS]);
    const optional = (await (await fetch(url('/.well-known/oauth-protected-resource/mcp'))).json()) as Record<string, unknown>;
    assert.equal(optional.dpop_bound_access_tokens_required, undefined);
  });
});

describe('resource-server nonces (RFC 9449 §9)', () => {
  async function freshNonce(token: string): Promise<string> {
    const response = await call('/nonce', token);
    assert.match(await expectRefusal(response, 'use_dpop_nonce'), /requires a DPoP nonce/);
    const nonce = response.headers.get('dpop-nonce');
    assert.ok(nonce);
    return nonce;
  }

  it('answers a proof without a nonce with use_dpop_nonce and a DPoP-Nonce; the retry with it succeeds', async () => {
    const token = await boundToken('/nonce');
    const nonce = await freshNonce(token);
    const retry = await call('/nonce', token, { fields: { nonce } });
    assert.equal(retry.status, 200);
    await retry.body?.cancel();
  });

  it('refuses a stale nonce with a fresh one, and hands out the next nonce on success before the old one goes stale', async () => {
    const token = await boundToken('/nonce');
    const nonce = await freshNonce(token);
    clock.advance(60_000);
    const aging = await call('/nonce', token, { fields: { nonce } });
    assert.equal(aging.status, 200, 'a nonce is good for the next step too');
    const next = aging.headers.get('dpop-nonce');
    assert.ok(next && next !== nonce, 'the response carries the next nonce');
    await aging.body?.cancel();
    // Issued for the next step, good for two steps either side of the current one (the token endpoint's window too).
    clock.advance(3 * 60_000);
    const stale = await call('/nonce', await boundToken('/nonce'), { fields: { nonce } });
    assert.match(await expectRefusal(stale, 'use_dpop_nonce'), /stale or unknown/);
    const fresh = stale.headers.get('dpop-nonce');
    assert.ok(fresh && fresh !== nonce, 'the refusal carries a nonce to retry with');
    const retry = await call('/nonce', token, { fields: { nonce: fresh } });
    assert.equal(retry.status, 200);
    await retry.body?.cancel();
  });

  it('refuses a nonce of another deployment (other keys), or altered', async () => {
    const token = await boundToken('/nonce');
    const foreign = createDpopNonces({ keyring: createTestKeyring(), clock }).current();
    assert.match(await expectRefusal(await call('/nonce', token, { fields: { nonce: foreign } }), 'use_dpop_nonce'), /stale or unknown/);
    const nonce = await freshNonce(token);
    const altered = (nonce.startsWith('A') ? 'B' : 'A') + nonce.slice(1);
    assert.match(await expectRefusal(await call('/nonce', token, { fields: { nonce: altered } }), 'use_dpop_nonce'), /stale or unknown/);
  });
});

describe('a proof for the Host header instead of the public URL', () => {
  it('is refused: htu is checked against the gateway public URL', async () => {
    const token = await boundToken();
    const proof = await dpopProof(key, { htm: 'POST', htu: 'http://evil.example/mcp', accessToken: token, iat: seconds(clock.now()) });
    const response = await mcpPost(url('/mcp'), undefined, toolsCall('echo'), { authorization: `DPoP ${token}`, dpop: proof, host: 'evil.example' });
    assert.match(await expectRefusal(response, 'invalid_dpop_proof'), /another URL/);
  });
});


describe('proofs an attacker crafts by hand (RFC 9449 §4.3, §11)', () => {
  /**
   * A key made with node:crypto, a token bound to it, and a proof whose header names `alg` whatever the key is, signed
   * by node:crypto (jose would refuse to sign a mismatch): the verifier alone must catch it.
   */
  async function handSigned(alg: string, keyOptions: { namedCurve: string } | { modulusLength: number }) {
    const { privateKey, publicKey } = 'namedCurve' in keyOptions ? generateKeyPairSync('ec', keyOptions) : generateKeyPairSync('rsa', keyOptions);
    const jwk = publicKey.export({ format: 'jwk' }) as JoseJwk;
    const token = await boundToken('/mcp', await calculateJwkThumbprint(jwk, 'sha256'));
    const claims = { htm: 'POST', htu: url('/mcp'), jti: randomUUID(), iat: seconds(clock.now()), ath: accessTokenHash(token) };
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const input = `${part({ alg, typ: 'dpop+jwt', jwk })}.${part(claims)}`;
    const signature = cryptoSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return { token, proof: `${input}.${signature.toString('base64url')}` };
  }

  it('refuses an ES256 header over a P-384 key (alg/crv mismatch)', async () => {
    const { token, proof } = await handSigned('ES256', { namedCurve: 'P-384' });
    assert.match(await expectRefusal(await call('/mcp', token, { proof }), 'invalid_dpop_proof'), /signature does not verify/);
  });

  it('accepts a hand-signed proof when alg and curve agree (the control for the cases around it)', async () => {
    const { token, proof } = await handSigned('ES256', { namedCurve: 'P-256' });
    const response = await call('/mcp', token, { proof });
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });

  it('refuses an RS256 proof from a 1024-bit RSA key', async () => {
    const { token, proof } = await handSigned('RS256', { modulusLength: 1024 });
    assert.match(await expectRefusal(await call('/mcp', token, { proof }), 'invalid_dpop_proof'), /signature does not verify/);
  });

  it('refuses a jti that is empty, a number, an object or 10 000 characters, and an iat far in the future or not a number', async () => {
    const token = await boundToken();
    for (const claims of [{ jti: '' }, { jti: 42 }, { jti: { a: 1 } }, { jti: 'j'.repeat(10_000) }, { iat: 1e15 }, { iat: String(seconds(clock.now())) }]) {
      const response = await call('/mcp', token, { fields: { claims } });
      assert.equal(response.status, 401, JSON.stringify(claims).slice(0, 60));
      await response.body?.cancel();
    }
  });

  it('refuses two proofs in one header, and an htu with a trailing slash, another path case or percent-encoded path', async () => {
    const token = await boundToken();
    const proof = await dpopProof(key, { htm: 'POST', htu: url('/mcp'), accessToken: token, iat: seconds(clock.now()) });
    const other = await dpopProof(key, { htm: 'POST', htu: url('/mcp'), accessToken: token, iat: seconds(clock.now()) });
    await expectRefusal(await call('/mcp', token, { proof: `${proof}, ${other}` }), 'invalid_dpop_proof');
    for (const htu of [url('/mcp/'), url('/MCP'), url('/%6Dcp'), url('/mcp/../mcp/x')]) {
      assert.match(await expectRefusal(await call('/mcp', token, { fields: { htu } }), 'invalid_dpop_proof'), /another URL/, htu);
    }
  });

  it('refuses two DPoP headers before the proof is read', async () => {
    const token = await boundToken();
    const proof = await dpopProof(key, { htm: 'POST', htu: url('/mcp'), accessToken: token, iat: seconds(clock.now()) });
    const { status } = await requestWithRawHeaders(url('/mcp'), [['authorization', `DPoP ${token}`], ['dpop', proof], ['dpop', proof]]);
    assert.equal(status, 400);
  });

  it('accepts the scheme in any case (RFC 9110 §11.1), and a bound token only with its own key', async () => {
    const token = await boundToken();
    const response = await call('/mcp', token, { scheme: 'dpop' });
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });
});

/** A POST whose headers are sent exactly as listed (fetch joins repeated ones into one). */
function requestWithRawHeaders(target: string, headers: [string, string][]): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(toolsCall('echo'));
    const raw = [['content-type', 'application/json'], ['accept', 'application/json, text/event-stream'], ['content-length', String(Buffer.byteLength(body))], ...headers].flat();
    const req = httpRequest(target, { method: 'POST', headers: raw }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('RFC 7638 thumbprint of a proof key', () => {
  it('equals jose\'s for EC, RSA and OKP keys, and is undefined for a key it cannot name', async () => {
    for (const [type, options] of [
      ['ec', { namedCurve: 'P-256' }],
      ['ec', { namedCurve: 'P-384' }],
      ['rsa', { modulusLength: 2048 }],
      ['ed25519', {}],
    ] as const) {
      const { publicKey } = generateKeyPairSync(type as 'ec', options as { namedCurve: string });
      const jwk = (await exportJWK(publicKey)) as JoseJwk;
      assert.equal(jwkThumbprint({ ...jwk, use: 'sig', alg: 'x' }), await calculateJwkThumbprint(jwk, 'sha256'), `${type} ${JSON.stringify(options)}`);
    }
    assert.equal(jwkThumbprint({ kty: 'oct', k: 'AAAA' }), undefined);
    assert.equal(jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 'AAAA' }), undefined);
    assert.equal(jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 7 as unknown as string }), undefined);
  });
});
