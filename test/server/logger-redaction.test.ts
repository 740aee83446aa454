import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { buildServer } from '../../src/server/app.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { compileRedaction, parseRedactPath } from '../../src/server/log-redaction.ts';
import { createLogger, MAX_LOGGED_URL_LENGTH, scrubUrl } from '../../src/server/logger.ts';
import { createServerTestContext, LogCapture } from '../support/server-context.ts';

/** Distinct secret strings; none of them may appear anywhere in the log output. */
const secrets = {
  bearer: 'eyJhbGciOiJFUzI1NiJ9.bearer-SECRET-1.sig',
  cookie: 'gh_session=cookie-SECRET-2',
  queryToken: 'query-SECRET-3',
  queryCode: 'code-SECRET-4',
  queryState: 'state-SECRET-5',
  bodyToken: 'body-SECRET-6',
  malformedBodyToken: 'malformed-SECRET-7',
  setCookie: 'set-cookie-SECRET-8',
};

const part: FastifyPluginAsync = async (app) => {
  app.post('/token', async (request) => {
    // A handler that fails after reading the body, logging what it was given the way careless code might.
    request.log.info({ body: request.body }, 'token request');
    throw new ProtocolError('invalid_grant');
  });
  app.get('/callback', async (_request, reply) => {
    reply.header('set-cookie', `session=${secrets.setCookie}; HttpOnly`);
    return { ok: true };
  });
  app.get('/crash', async (request) => {
    request.log.info({ headers: request.headers }, 'headers seen');
    throw new Error('boom');
  });
};

describe('log redaction', () => {
  const { ctx, logs } = createServerTestContext();
  let app: FastifyInstance;
  let base: string;
  before(async () => {
    app = await buildServer(ctx, { plugins: [part] });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(() => app.close());

  it('keeps every secret out of the logs of real requests', async () => {
    const authHeaders = { authorization: `Bearer ${secrets.bearer}`, cookie: secrets.cookie };
    const responses = await Promise.all([
      fetch(`${base}/callback?code=${secrets.queryCode}&state=${secrets.queryState}&iss=https%3A%2F%2Fidp`, { headers: authHeaders }),
      fetch(`${base}/healthz?access_token=${secrets.queryToken}`, { headers: authHeaders }),
      fetch(`${base}/token`, {
        method: 'POST',
        headers: { ...authHeaders, 'content-type': 'application/json' },
        body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: secrets.bodyToken, client_secret: secrets.bodyToken }),
      }),
      fetch(`${base}/token`, {
        method: 'POST',
        headers: { ...authHeaders, 'content-type': 'application/json' },
        body: `{"access_token": "${secrets.malformedBodyToken}", broken`,
      }),
      fetch(`${base}/crash`, { headers: authHeaders }),
    ]);
    assert.deepEqual(
      responses.map((res) => res.status),
      [200, 200, 400, 400, 500],
    );
    await Promise.all(responses.map((res) => res.arrayBuffer()));

    const output = logs.text();
    // The requests were logged (so the test would see a leak), just without the secrets.
    assert.match(output, /"url":"\/callback\?code=\[REDACTED\]&state=\[REDACTED\]&iss=https%3A%2F%2Fidp"/);
    assert.match(output, /"url":"\/healthz\?access_token=\[REDACTED\]"/);
    assert.match(output, /token request/);
    assert.match(output, /headers seen/);
    for (const [name, secret] of Object.entries(secrets)) {
      assert.ok(!output.includes(secret), `${name} leaked into the log`);
    }
  });
});

describe('createLogger redact paths', () => {
  it('blanks token fields and auth headers wherever they are logged', () => {
    const capture = new LogCapture();
    const logger = createLogger({ level: 'info', destination: capture });
    logger.info({ req: { method: 'GET', headers: { authorization: 'DPoP a-SECRET', dpop: 'proof-SECRET', cookie: 'c-SECRET' } } }, 'r');
    logger.info({ headers: { authorization: 'Bearer h-SECRET', dpop: 'hproof-SECRET', cookie: 'hc-SECRET', accept: 'json' } }, 'h');
    logger.info({ res: { headers: { 'set-cookie': 's-SECRET' } } }, 's');
    logger.info(
      {
        tokenResponse: { access_token: 'at-SECRET', refresh_token: 'rt-SECRET', id_token: 'it-SECRET', token_type: 'Bearer' },
        exchange: { subject_token: 'st-SECRET', assertion: 'as-SECRET', client_secret: 'cs-SECRET' },
        form: { code: 'code-SECRET', password: 'pw-SECRET' },
      },
      't',
    );
    const output = capture.text();
    assert.doesNotMatch(output, /SECRET/);
    assert.match(output, /"token_type":"Bearer"/, 'non-secret fields are kept');
    assert.match(output, /"accept":"json"/);
  });

  it("keeps an error's code (ENOENT, ECONNREFUSED, GH_…) and its stack, and still blanks an authorization code", () => {
    // An operator read `"code":"[REDACTED]"` and an empty stack where why a file or a connection failed should be.
    const capture = new LogCapture();
    const logger = createLogger({ level: 'info', destination: capture });
    logger.error({ err: Object.assign(new Error('open /var/log/gatehouse/audit.jsonl'), { code: 'ENOENT' }) }, 'audit file cannot be written');
    logger.warn({ err: Object.assign(new Error('headers timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' }) }, 'backend');
    logger.info({ form: { code: 'SplxlOBeZQQYbYS6WxSbIA-SECRET' }, callback: { code: 'A1B2C3D4E5F60718293A4B5C6D7E8F90' } }, 'oauth');
    const [audit, backend, oauth] = capture.text().trim().split('\n').map((line) => JSON.parse(line) as { err?: { code?: unknown; stack?: string }; form?: { code?: string }; callback?: { code?: string } });
    assert.equal(audit?.err?.code, 'ENOENT');
    assert.match(audit?.err?.stack ?? '', /audit\.jsonl\n\s+at /);
    assert.equal(backend?.err?.code, 'UND_ERR_HEADERS_TIMEOUT');
    assert.equal(oauth?.form?.code, '[REDACTED]');
    // An upstream IdP's code may be upper-case hex: in the shape of an error code, but not on an Error, so blanked.
    assert.equal(oauth?.callback?.code, '[REDACTED]');
  });
});

describe('scrubUrl', () => {
  it('keeps paths and harmless parameters', () => {
    assert.equal(scrubUrl('/authorize?client_id=abc&scope=mcp%3Atools'), '/authorize?client_id=abc&scope=mcp%3Atools');
    assert.equal(scrubUrl('/mcp'), '/mcp');
  });
  for (const name of ['code', 'state', 'token', 'access_token', 'ACCESS_TOKEN', 'id_token', 'subject_token', 'request', 'id_token_hint', 'login_hint']) {
    it(`scrubs ${name}`, () => {
      assert.equal(scrubUrl(`/x?${name}=SECRET&a=1`), `/x?${name}=[REDACTED]&a=1`);
    });
  }
  it("scrubs a REST API's own secret-named parameters, and keeps ones that only look alike", () => {
    for (const name of ['api_key', 'apiKey', 'key', 'x-key', 'sig', 'X-Amz-Signature', 'X-Amz-Credential', 'sessionid', 'JSESSIONID', 'PHPSESSID', 'password', 'passwd', 'passphrase', 'passcode', 'client-secret', 'auth', 'auth_user', 'otp', 'totp', 'refreshToken', 'privateKey', 'accessKey', 'subscriptionKey', 'authorization', 'access-token', 'OTPCode', 'userPINCode', 'password_hint', 'passwordHint']) {
      assert.equal(scrubUrl(`/api?${name}=QUERYSECRET&page=2`), `/api?${name}=[REDACTED]&page=2`, name);
    }
    for (const name of ['keyword', 'author', 'monkey', 'footprint', 'design', 'page', 'client_id', 'scope', 'code_challenge', 'redirect_uri', 'token_type_hint', 'client_assertion_type', 'subject_token_type', 'max_tokens', 'pageToken', 'next_page_token', 'public_key', 'sort_key', 'idempotency_key']) {
      assert.equal(scrubUrl(`/api?${name}=visible`), `/api?${name}=visible`, name);
    }
    // Carried inside another parameter's value or name, as some servers split them (`;`): withheld the same.
    assert.equal(scrubUrl('/x?x=1;api_key=QUERYSECRET'), '/x?x=[REDACTED]');
    assert.equal(scrubUrl('/x?a%3Bapi_key%3DQUERYSECRET'), '/x?[REDACTED]');
    assert.equal(scrubUrl('/x?note=a=b;c=d'), '/x?note=a=b;c=d');
  });

  it('scrubs a JWT under any parameter name (a request object, an ID token hint, whatever a client invents)', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
    assert.equal(scrubUrl(`/authorize?client_id=x&whatever=${jwt}`), '/authorize?client_id=x&whatever=[REDACTED]');
    const jwe = 'eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn';
    assert.equal(scrubUrl(`/authorize?x=${jwe}`), '/authorize?x=[REDACTED]');
    // Or as the name itself: a client that put its token where a name goes still sent it.
    assert.equal(scrubUrl(`/mcp?${jwt}`), '/mcp?[REDACTED]');
    assert.equal(scrubUrl(`/mcp?a=1&${jwt}=&b=2`), '/mcp?a=1&[REDACTED]=&b=2');
    assert.equal(scrubUrl(`/mcp?Bearer%20${jwt}=1`), '/mcp?Bearer%20%5BREDACTED%5D=1');
    assert.equal(scrubUrl(`/mcp?a%3Baccess_token%3Dopaque-SECRET`), '/mcp?[REDACTED]');
  });
  it('keeps what it does not withhold as it was sent, and cuts a long URL with a count of the rest', () => {
    // Decoded and encoded again, a query of `+` grew threefold (`%20`); a client could triple what it wrote to the log.
    const plus = '+'.repeat(1_000);
    assert.equal(scrubUrl(`/authorize?a=${plus}&code=x&b=%7e`), `/authorize?a=${plus}&code=[REDACTED]&b=%7e`);
    const long = scrubUrl(`/authorize?a=${'+'.repeat(15_000)}&state=s`);
    assert.equal(long.length < MAX_LOGGED_URL_LENGTH + 40, true, `${long.length} characters logged`);
    assert.match(long, /…\[12982 more characters\]$/);
    assert.equal(scrubUrl(`/x?${'a'.repeat(MAX_LOGGED_URL_LENGTH - 3)}`), `/x?${'a'.repeat(MAX_LOGGED_URL_LENGTH - 3)}`);
  });

  it('scrubs a token wrapped inside a value or written in the path, and a value carrying a sensitive parameter of its own', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
    // `;` is a parameter separator to some servers: the value of `x` is, to them, a second parameter.
    assert.equal(scrubUrl(`/mcp?x=1;access_token=${jwt}`), '/mcp?x=[REDACTED]');
    assert.equal(scrubUrl('/mcp?x=1;refresh_token=opaque-SECRET'), '/mcp?x=[REDACTED]');
    assert.equal(scrubUrl(`/mcp?x=Bearer%20${jwt}&a=1`), '/mcp?x=Bearer%20%5BREDACTED%5D&a=1');
    assert.equal(scrubUrl(`/rest/files/${jwt}/raw?a=1`), '/rest/files/[REDACTED]/raw?a=1');
    assert.equal(scrubUrl(`/rest/${jwt}`), '/rest/[REDACTED]');
    // A parameter that only ends like one is not one.
    assert.equal(scrubUrl('/x?q=mycode=1'), '/x?q=mycode=1');
    // The `;` in the name instead: `;access_token` is `access_token` to a server that splits on it.
    assert.equal(scrubUrl('/mcp?%3Baccess_token=SECRET1&b=2'), '/mcp?%3Baccess_token=[REDACTED]&b=2');
    assert.equal(scrubUrl('/mcp?x;access_token=SECRET2'), '/mcp?x;access_token=[REDACTED]');
    // Not inside a word: an ordinary path keeps its tail.
    assert.equal(scrubUrl('/static/surveyJS.min.js'), '/static/surveyJS.min.js');
  });

  it('scrubs a long hostile URL in linear time (no backtracking over every start position)', () => {
    // Timed assertions do not belong in tests: this counts nothing but must finish; 200,000 characters took minutes
    // with the unanchored pattern (quadratic), and take milliseconds now.
    const hostile = `/x/${'eyJ'.repeat(70_000)}?v=${'eyJ'.repeat(70_000)}`;
    assert.ok(scrubUrl(hostile).startsWith('/x/'));
  });
});

describe('compiled redaction (log-redaction.ts)', () => {
  const redact = compileRedaction(['a.secret', 'headers["set-cookie"]', 'req.headers.authorization', 'top', '*.token'], '[X]');

  it('censors each path form: literal, bracketed, nested, top-level and one-level wildcard', () => {
    const out = redact({
      a: { secret: 's', kept: 1 },
      headers: { 'set-cookie': 'c', accept: 'json' },
      req: { headers: { authorization: 'Bearer t', host: 'h' } },
      top: 'x',
      b: { token: 't2', other: 2 },
      plain: 'p',
    });
    assert.deepEqual(out, {
      a: { secret: '[X]', kept: 1 },
      headers: { 'set-cookie': '[X]', accept: 'json' },
      req: { headers: { authorization: '[X]', host: 'h' } },
      top: '[X]',
      b: { token: '[X]', other: 2 },
      plain: 'p',
    });
  });

  it('never modifies the logged object, and returns it unchanged when nothing is secret', () => {
    const original = { a: { secret: 's' }, b: { fine: 1 } };
    const out = redact(original);
    assert.equal(original.a.secret, 's');
    assert.notEqual(out, original);
    assert.equal(out.b, original.b, 'untouched branches are shared, not copied');
    const clean = { b: { fine: 1 }, n: 2 };
    assert.equal(redact(clean), clean);
  });

  it('keeps an Error an Error (message and stack survive for the err serializer)', () => {
    const error = Object.assign(new Error('boom'), { token: 'leak' });
    const out = redact({ err: error });
    assert.ok(out.err instanceof Error);
    assert.equal(out.err.message, 'boom');
    assert.equal((out.err as Error & { token: string }).token, '[X]');
    assert.equal(error.token, 'leak');
    // V8's `stack` reads the error it was captured on: the copy read "" until it was kept as data.
    assert.equal(out.err.stack, error.stack);
    assert.match(out.err.stack ?? '', /boom\n\s+at /);
  });

  it('parses bracketed and quoted path segments', () => {
    assert.deepEqual(parseRedactPath('req.headers["proxy-authorization"]'), ['req', 'headers', 'proxy-authorization']);
    assert.deepEqual(parseRedactPath("a['b.c'].*"), ['a', 'b.c', '*']);
  });
});

describe('request log lines', () => {
  const { ctx, logs } = createServerTestContext();
  let app: FastifyInstance;
  before(async () => {
    app = await buildServer(ctx, { plugins: [] });
  });
  after(() => app.close());

  it('writes exactly one line per request, with the request, the status and the response time', async () => {
    const before = logs.lines().length;
    const response = await app.inject({ method: 'GET', url: '/healthz?access_token=SECRET-9' });
    assert.equal(response.statusCode, 200);
    const lines = logs.lines().slice(before);
    assert.equal(lines.length, 1, `one line, got: ${JSON.stringify(lines)}`);
    const [line] = lines as Array<{ msg: string; req: { url: string; method: string }; res: { statusCode: number }; responseTime: number; reqId: string }>;
    assert.equal(line!.msg, 'request completed');
    assert.equal(line!.req.method, 'GET');
    assert.equal(line!.req.url, '/healthz?access_token=[REDACTED]');
    assert.equal(line!.res.statusCode, 200);
    assert.equal(typeof line!.responseTime, 'number');
    assert.equal(typeof line!.reqId, 'string');
  });
});
