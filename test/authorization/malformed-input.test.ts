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

  it('logged no unexpected errors', () => {
    const errors = server.logs.lines().filter((line) => (line.level as number) >= 50);
    assert.deepEqual(errors, []);
  });
});
