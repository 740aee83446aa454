import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cspOrigin } from '../../src/config/csp-source.ts';
import { upstreamBrowserOrigin } from '../../src/upstream/profile.ts';

/** Origins enter a CSP only as host-source syntax: a WHATWG host may hold `;`, `,`, `*`, `'`, `"` (CSP3 §2.3.1). */
describe('cspOrigin', () => {
  for (const [url, expected] of [
    ['https://cdn.example/logo.svg', 'https://cdn.example'],
    ['https://CDN.Example:8443/x', 'https://cdn.example:8443'],
    ['http://[::1]:53682/callback', 'http://[::1]:53682'],
    ['https://bücher.example/', 'https://xn--bcher-kva.example'],
    ['https://a.example;script-src*/', undefined],
    ['https://a.example,default-src/', undefined],
    ["https://a'unsafe-inline'/", undefined],
    ['https://*.example/', undefined],
    ['cursor://callback', undefined],
    ['not a url', undefined],
  ] as const) {
    it(`${url} → ${expected}`, () => assert.equal(cspOrigin(url), expected));
  }

  it("keeps an IdP whose URL is not CSP syntax out of the console's form-action", () => {
    assert.equal(upstreamBrowserOrigin({ type: 'oidc', issuer: 'https://idp.example;script-src*/' }), undefined);
    assert.equal(upstreamBrowserOrigin({ type: 'oidc', issuer: 'https://idp.example/tenant' }), 'https://idp.example');
  });
});
