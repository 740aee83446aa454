import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loopbackWithoutPort } from '../../src/authorization/client-overrides.ts';
import { redirectUriProblem, redirectUrisProblem } from '../../src/authorization/redirect-uri-policy.ts';

describe('redirect URI policy', () => {
  const accepted = [
    'https://app.example.test/callback',
    'https://app.example.test:8443/cb?x=1',
    'http://127.0.0.1/callback',
    'http://127.0.0.1:53682/callback',
    'http://[::1]:8080/cb',
    'http://localhost:3000/oauth/callback',
  ];
  const refused = [
    'javascript:alert(1)',
    'JavaScript:alert(1)',
    'data:text/html,hi',
    'file:///etc/passwd',
    'vbscript:msgbox',
    'http://app.example.test/callback',
    'http://127.0.0.1.example.test/cb',
    'https://app.example.test/cb#fragment',
    'https://user:pass@app.example.test/cb',
    'myapp:/callback',
    '/relative/callback',
  ];
  for (const uri of accepted) it(`accepts ${uri}`, () => assert.equal(redirectUriProblem(uri), undefined));
  for (const uri of refused) it(`refuses ${uri}`, () => assert.notEqual(redirectUriProblem(uri), undefined));

  it('checks every URI of a client and the shape of the list', () => {
    assert.equal(redirectUrisProblem(undefined), undefined);
    assert.notEqual(redirectUrisProblem('https://app.example.test/cb'), undefined);
    assert.notEqual(redirectUrisProblem(['https://app.example.test/cb', 'javascript:alert(1)']), undefined);
    assert.notEqual(redirectUrisProblem([42]), undefined);
  });
});

describe('loopback redirect matching (RFC 8252 §7.3)', () => {
  it('ignores only the port of http loopback URIs', () => {
    assert.equal(loopbackWithoutPort('http://127.0.0.1:1234/cb'), loopbackWithoutPort('http://127.0.0.1/cb'));
    assert.notEqual(loopbackWithoutPort('http://127.0.0.1:1234/cb'), loopbackWithoutPort('http://127.0.0.1/cb2'));
    assert.notEqual(loopbackWithoutPort('http://localhost:1234/cb'), loopbackWithoutPort('http://127.0.0.1:1234/cb'));
    assert.equal(loopbackWithoutPort('https://127.0.0.1:1234/cb'), undefined);
    assert.equal(loopbackWithoutPort('http://app.example.test:1234/cb'), undefined);
  });
});
