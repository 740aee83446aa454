import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startAuthorizationServer } from './harness.ts';
import { startedForSuite } from '../support/suite-server.ts';

/** Garbage at every authorization-server surface gets a 4xx with a clear error: never a 500, never a stack trace. */
describe('malformed input', () => {
  const server = startedForSuite(() => startAuthorizationServer());

  const cases: Array<[string, string, RequestInit?]> = [
    ['unknown interaction', '/interaction/does-not-exist'],
    ['interaction id with odd characters', '/interaction/%00%3Cscript%3E'],
    ['overlong interaction id', `/interaction/${'a'.repeat(5000)}`],
    ['signed-in without a sign-in', '/interaction/does-not-exist/signed-in'],
    ['sign-in-failed without a sign-in', '/interaction/does-not-exist/sign-in-failed'],
    ['sign-in-failed with odd characters', '/interaction/%3Cx%3E/sign-in-failed'],
    ['decision without a body', '/interaction/does-not-exist/decision', { method: 'POST' }],
    ['decision with JSON', '/interaction/does-not-exist/decision', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"decision":"approve"}' }],
    ['decision with broken JSON', '/interaction/does-not-exist/decision', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' }],
    ['callback without parameters', '/callback'],
    ['callback with an upstream error', '/callback?error=access_denied&state=unknown'],
    ['authorize with repeated client_id', '/authorize?client_id=a&client_id=b&response_type=code'],
    ['authorize without parameters', '/authorize'],
    ['token without a body', '/token', { method: 'POST' }],
    ['token with JSON', '/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"grant_type":"authorization_code"}' }],
    ['token with an unknown grant', '/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password&username=a&password=b' }],
    ['register with text', '/register', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' }],
    ['register with an array', '/register', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[]' }],
    ['revoke without a token', '/revoke', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_id=x' }],
    ['introspect unauthenticated', '/introspect', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=x' }],
  ];

  for (const [label, path, init] of cases) {
    it(`answers ${label} with a 4xx`, async () => {
      const response = await fetch(`${server.publicUrl}${path}`, { redirect: 'manual', ...init });
      assert.ok(response.status >= 400 && response.status < 500, `${label}: ${response.status}`);
      const body = await response.text();
      assert.doesNotMatch(body, /\bat .+\.(?:js|ts):\d+/, 'no stack trace');
      assert.doesNotMatch(body, /server_error/);
    });
  }

  // The provider read no parameters from these and answered "no client authentication mechanism provided".
  const unreadableForms: Array<[string, string, Record<string, string>, number, RegExp]> = [
    ['token without a Content-Type', '/token', {}, 400, /must be a form/],
    ['token with JSON', '/token', { 'content-type': 'application/json' }, 400, /must be a form/],
    ['revoke as text', '/revoke', { 'content-type': 'text/plain' }, 400, /must be a form/],
    ['introspect in UTF-16', '/introspect', { 'content-type': 'application/x-www-form-urlencoded; charset=utf-16' }, 400, /must be UTF-8/],
    ['token gzip-coded', '/token', { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' }, 415, /must not be content-coded/],
  ];
  it('says so of a form of more parameters than the provider reads (it drops those after its first thousand)', async () => {
    const response = await fetch(`${server.publicUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${'a=1&'.repeat(1000)}grant_type=client_credentials&resource=x`,
    });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error_description: string }).error_description, /more than 256 parameters/);
  });
  it('reads a form that names a charset extending ASCII (Java sends ISO-8859-1)', async () => {
    const response = await fetch(`${server.publicUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=ISO-8859-1' },
      body: 'grant_type=password',
    });
    assert.equal(response.status, 400);
    assert.doesNotMatch(((await response.json()) as { error_description: string }).error_description, /form|UTF-8/);
  });
  for (const [label, path, headers, status, description] of unreadableForms) {
    it(`says what is wrong with a ${label}`, async () => {
      const response = await fetch(`${server.publicUrl}${path}`, { method: 'POST', headers, body: 'grant_type=client_credentials&client_id=x' });
      assert.equal(response.status, status);
      const body = (await response.json()) as { error: string; error_description: string };
      assert.equal(body.error, 'invalid_request');
      assert.match(body.error_description, description);
      if (status === 415) assert.equal(response.headers.get('accept-encoding'), 'identity');
    });
  }
  it('reads a form that says its charset is UTF-8, in any spelling', async () => {
    const response = await fetch(`${server.publicUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'Application/X-WWW-Form-Urlencoded; Charset="UTF-8"' },
      body: 'grant_type=password',
    });
    assert.equal(response.status, 400);
    assert.doesNotMatch(((await response.json()) as { error_description: string }).error_description, /form|UTF-8/);
  });

  // Handed to the provider, a method it does not serve got Koa's plain-text 404 — the one error body on the server
  // that was neither JSON nor the error page.
  const wrongMethods: Array<[string, string, string]> = [
    ['GET', '/token', 'POST, OPTIONS'],
    ['PUT', '/token', 'POST, OPTIONS'],
    ['HEAD', '/token', 'POST, OPTIONS'],
    ['GET', '/register', 'POST, OPTIONS'],
    ['DELETE', '/revoke', 'POST, OPTIONS'],
    ['GET', '/introspect', 'POST, OPTIONS'],
    ['POST', '/authorize', 'GET, HEAD'],
    ['PUT', '/register/some-client', 'GET, HEAD'],
  ];
  for (const [method, path, allow] of wrongMethods) {
    it(`answers ${method} ${path} with 405, Allow: ${allow}, in OAuth JSON`, async () => {
      const response = await fetch(`${server.publicUrl}${path}`, { method, redirect: 'manual' });
      assert.equal(response.status, 405);
      assert.equal(response.headers.get('allow'), allow);
      if (method !== 'HEAD') {
        assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
        assert.equal(((await response.json()) as { error: string }).error, 'invalid_request');
      }
    });
  }

  // The provider answers OPTIONS only as a CORS preflight: without an Origin it fell through to Koa's plain-text 404.
  for (const [path, allow] of [
    ['/token', 'POST, OPTIONS'],
    ['/register', 'POST, OPTIONS'],
    ['/revoke', 'POST, OPTIONS'],
    ['/introspect', 'POST, OPTIONS'],
    ['/.well-known/oauth-authorization-server', 'GET, HEAD, OPTIONS'],
    ['/.well-known/openid-configuration', 'GET, HEAD, OPTIONS'],
  ] as const) {
    it(`answers OPTIONS ${path} without an Origin with 204 and Allow: ${allow}`, async () => {
      const response = await fetch(`${server.publicUrl}${path}`, { method: 'OPTIONS' });
      assert.equal(response.status, 204);
      assert.equal(response.headers.get('allow'), allow);
      assert.equal(await response.text(), '');
      const preflight = await fetch(`${server.publicUrl}${path}`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
      assert.ok(preflight.status === 204 || preflight.status === 200, `preflight ${preflight.status}`);
      assert.ok(preflight.headers.get('access-control-allow-origin'), 'a preflight still gets CORS');
    });
  }

  it('answers an unparseable body sent to a path that does not exist with 404, not a complaint about the body', async () => {
    for (const [type, body] of [['application/json', ''], ['application/json', '{'], ['application/x-unknown', 'x']] as const) {
      const response = await fetch(`${server.publicUrl}/no-such-endpoint`, { method: 'POST', headers: { 'content-type': type }, body });
      assert.equal(response.status, 404, `${type} ${JSON.stringify(body)}`);
      assert.equal(((await response.json()) as { error: string }).error, 'not_found');
    }
  });

  // A form sends application/x-www-form-urlencoded. Fastify parses JSON and text/plain on every route, so those reached
  // the handler and were called malformed (400) while multipart, with no parser, was 415: one mistake, two answers.
  it('answers a consent decision in any body type but a form\'s with 415 on the error page', async () => {
    for (const type of ['text/plain', 'application/json', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencodedx']) {
      const response = await fetch(`${server.publicUrl}/interaction/does-not-exist/decision`, { method: 'POST', headers: { 'content-type': type }, body: 'decision=approve' });
      assert.equal(response.status, 415, type);
      assert.match(response.headers.get('content-type') ?? '', /^text\/html/, type);
      assert.match(await response.text(), /application\/x-www-form-urlencoded/);
    }
    const form = await fetch(`${server.publicUrl}/interaction/does-not-exist/decision`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' }, body: 'decision=approve' });
    assert.notEqual(form.status, 415);
  });

  it('shows a browser following a link with an over-long path parameter the error page, a program JSON', async () => {
    const path = `/interaction/${'a'.repeat(5000)}`;
    const browser = await fetch(`${server.publicUrl}${path}`, { headers: { accept: 'text/html' } });
    assert.equal(browser.status, 400);
    assert.match(browser.headers.get('content-type') ?? '', /^text\/html/);
    assert.ok(browser.headers.get('x-request-id'));
    const form = await fetch(`${server.publicUrl}${path}`, {
      method: 'POST',
      headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' },
      body: 'consent_state=x',
    });
    assert.equal(form.status, 400);
    assert.match(form.headers.get('content-type') ?? '', /^text\/html/, 'a form submitted to such a link is a person too');
    const program = await fetch(`${server.publicUrl}${path}`);
    assert.equal(program.status, 400);
    assert.equal(((await program.json()) as { error: string }).error, 'invalid_request');
  });

  it('logged no unexpected errors', () => {
    const errors = server.logs.lines().filter((line) => (line.level as number) >= 50);
    assert.deepEqual(errors, []);
  });
});
