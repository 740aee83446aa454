import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redirectTarget } from '../../src/authorization/consent-page.ts';
import { hasPrivateUseRedirectUri, loopbackWithoutPort, redirectUriProblem, redirectUrisProblem } from '../../src/authorization/redirect-uri-policy.ts';

describe('redirect URI policy', () => {
  const accepted = [
    'https://app.example.test/callback',
    'https://app.example.test:8443/cb?x=1',
    'http://127.0.0.1/callback',
    'http://127.0.0.1:53682/callback',
    'http://[::1]:8080/cb',
    'http://localhost:3000/oauth/callback',
    // private-use schemes of native apps (RFC 8252 §7.1)
    'cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback',
    'vscode://vscode.github-authentication/did-authenticate',
    'com.example.app:/oauth2redirect/example-provider',
    'myapp:/callback',
  ];
  const refused = [
    'javascript:alert(1)',
    'JavaScript:alert(1)',
    'data:text/html,hi',
    'file:///etc/passwd',
    'vbscript:msgbox',
    'http://app.example.test/callback',
    'http://127.0.0.1.example.test/cb',
    // hosts that only parse to a loopback address (the URL parser normalises them)
    'http://2130706433/cb',
    'http://0x7f000001/cb',
    'http://127.1/cb',
    'http://[0:0:0:0:0:0:0:1]/cb',
    'https://app.example.test/cb#fragment',
    'https://user:pass@app.example.test/cb',
    '/relative/callback',
    // script-capable, local, network, messaging and browser/OS handler schemes are never an app's own
    'blob:https://app.example.test/uuid',
    'about:blank',
    'ftp://files.example.test/cb',
    'ws://127.0.0.1:8080/cb',
    'wss://app.example.test/cb',
    'mailto:someone@example.test',
    'tel:+15555550100',
    'chrome://settings',
    'chrome-extension://abcdefghijklmnop/cb',
    'intent://scan/',
    'ms-msdt:/id',
    'MS-Settings:privacy',
    'search-ms:query=x',
    // private-use URIs keep the general rules
    'cursor://anysphere.cursor-retrieval/cb#fragment',
    'cursor://user:secret@anysphere.cursor-retrieval/cb',
    'cursor://anysphere.cursor-retrieval/c b',
    'cursor://anysphere.cursor-retrieval/cb\n',
    '1app://callback',
    'my_app://callback',
  ];
  for (const uri of accepted) it(`accepts ${uri}`, () => assert.equal(redirectUriProblem(uri), undefined));
  for (const uri of refused) it(`refuses ${uri}`, () => assert.notEqual(redirectUriProblem(uri), undefined));

  it('checks every URI of a client and the shape of the list', () => {
    assert.equal(redirectUrisProblem(undefined), undefined);
    assert.notEqual(redirectUrisProblem('https://app.example.test/cb'), undefined);
    assert.notEqual(redirectUrisProblem(['https://app.example.test/cb', 'javascript:alert(1)']), undefined);
    assert.notEqual(redirectUrisProblem([42]), undefined);
  });

  it('tells which clients are native (a private-use redirect URI)', () => {
    assert.equal(hasPrivateUseRedirectUri(['https://app.example.test/cb', 'cursor://app/cb']), true);
    assert.equal(hasPrivateUseRedirectUri(['https://app.example.test/cb', 'http://127.0.0.1:3000/cb']), false);
    assert.equal(hasPrivateUseRedirectUri(['javascript:alert(1)']), false);
    assert.equal(hasPrivateUseRedirectUri(undefined), false);
  });
});

describe('redirect target shown on the consent page', () => {
  const cases: Array<[string, string]> = [
    ['https://app.example.test:8443/cb?x=1', 'app.example.test:8443'],
    ['http://127.0.0.1:53682/callback', '127.0.0.1:53682'],
    ['cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback', 'cursor://anysphere.cursor-retrieval'],
    ['com.example.app:/oauth2redirect', 'com.example.app:'],
  ];
  for (const [uri, shown] of cases) it(`shows ${uri} as ${shown}`, () => assert.equal(redirectTarget(uri), shown));
});

describe('loopback redirect matching (RFC 8252 §7.3)', () => {
  it('ignores only the port of http loopback URIs', () => {
    assert.equal(loopbackWithoutPort('http://127.0.0.1:1234/cb'), loopbackWithoutPort('http://127.0.0.1/cb'));
    assert.notEqual(loopbackWithoutPort('http://127.0.0.1:1234/cb'), loopbackWithoutPort('http://127.0.0.1/cb2'));
    assert.notEqual(loopbackWithoutPort('http://localhost:1234/cb'), loopbackWithoutPort('http://127.0.0.1:1234/cb'));
    assert.equal(loopbackWithoutPort('https://127.0.0.1:1234/cb'), undefined);
    assert.equal(loopbackWithoutPort('http://app.example.test:1234/cb'), undefined);
  });

  const registered = 'http://127.0.0.1/cb';
  const normalisedVariants = [
    'http://2130706433:1234/cb',
    'http://127.1:1234/cb',
    'http://127.0.0.1:1234/x/../cb',
    'http://127.0.0.1:1234/./cb',
    'http://127.0.0.1:1234/c\tb',
    'http://127.0.0.1:1234/cb\n',
    'http://127.0.0.1:1234/%63b',
    'http://127.0.0.1:99999/cb',
    'HTTP://127.0.0.1:1234/cb',
  ];
  for (const variant of normalisedVariants) {
    it(`does not match ${JSON.stringify(variant)} to ${registered} (RFC 9700 §4.1.3)`, () => {
      const stripped = loopbackWithoutPort(variant);
      assert.ok(stripped === undefined || stripped !== loopbackWithoutPort(registered), String(stripped));
    });
  }
});
