import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contrastRatio } from '../../src/config/colour-contrast.ts';
import { configSchema } from '../../src/config/schema.ts';
import { brandingImageOrigins, brandingStylesheet } from '../../src/server/branding-assets.ts';
import { authorizeUrl, authorizationParams, pkcePair, registerPublicClient, startAuthorizationServer, TestBrowser, type TestServer } from '../authorization/harness.ts';

/**
 * `branding`: validated when the config loads (hex colour readable on white, links https or on this gateway),
 * served as a generated stylesheet (no inline style), the logo's origin allowed in `img-src`, and shown on the
 * consent page and the error pages — the gateway's and oidc-provider's.
 */
const problems = (branding: Record<string, unknown>): string[] => {
  const parsed = configSchema.safeParse({ branding });
  return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
};

const BRANDING = { organisationName: 'Contoso', logoUrl: 'https://cdn.contoso.example/logo.svg', supportUrl: '/help', accentColour: '#8a1538' };

describe('branding settings', () => {
  it('accepts hex colours readable on white and https or same-origin links', () => {
    assert.deepEqual(problems(BRANDING), []);
    assert.deepEqual(problems({ accentColour: '#036' }), []);
  });

  for (const [name, branding, words] of [
    ['a named colour', { accentColour: 'red' }, /accentColour: must be a hex colour/],
    ['CSS smuggled in a colour', { accentColour: '#fff; background:url(x)' }, /accentColour: must be a hex colour/],
    ['a colour too light to read on white', { accentColour: '#ffd700' }, /accentColour: must be dark enough to read on white/],
    ['an http logo', { logoUrl: 'http://cdn.example/logo.png' }, /logoUrl: must be an https URL or a path/],
    ['a javascript: support link', { supportUrl: 'javascript:alert(1)' }, /supportUrl: must be an https URL or a path/],
    ['a protocol-relative link', { supportUrl: '//evil.example/' }, /supportUrl: must be an https URL or a path/],
    ['a backslash path', { logoUrl: '/\\evil.example/x.png' }, /logoUrl: must be an https URL or a path/],
    ['a logo host carrying CSP syntax', { logoUrl: "https://cdn.example;script-src*/logo.png" }, /logoUrl: its origin cannot be named in the pages' CSP/],
    ['a logo host starting another policy', { logoUrl: 'https://cdn.example,img-src/logo.png' }, /logoUrl: its origin cannot be named in the pages' CSP/],
    ['an unknown key', { font: 'Comic Sans' }, /Unrecognized key/],
  ] as const) {
    it(`refuses ${name}`, () => {
      assert.match(problems(branding).join('\n'), words);
    });
  }

  it('never puts such a host into an img-src, whatever reaches the stylesheet builder', () => {
    assert.deepEqual(brandingImageOrigins({ logoUrl: "https://cdn.example;script-src*/logo.png" }), []);
    assert.deepEqual(brandingImageOrigins({ logoUrl: 'https://cdn.example:8443/logo.png' }), ['https://cdn.example:8443']);
  });

  it('sets the accent in light mode, and in dark mode only where it stays readable', () => {
    const dark = brandingStylesheet({ accentColour: '#8a1538' });
    assert.match(dark, /@media \(prefers-color-scheme: light\) \{ :root \{ --accent: #8a1538; --accent-text: #ffffff; \} \}/);
    assert.doesNotMatch(dark, /prefers-color-scheme: dark/);
    assert.equal(brandingStylesheet({}), '');
    assert.ok(contrastRatio('#8a1538', '#ffffff') >= 4.5);
  });
});

describe('branded pages', () => {
  let server: TestServer;
  before(async () => {
    server = await startAuthorizationServer({ extraConfig: { branding: BRANDING } });
  });
  after(async () => {
    await server.close();
  });

  it('serves the accent stylesheet from our origin', async () => {
    const css = await fetch(`${server.publicUrl}/assets/branding.css`);
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
    assert.match(await css.text(), /--accent: #8a1538/);
  });

  it('brands the consent page under its CSP', async () => {
    const client = await registerPublicClient(server);
    const { response } = await new TestBrowser().follow(authorizeUrl(server, authorizationParams(server, client.client_id, pkcePair().challenge, { state: 's' })), server.publicUrl);
    const html = await response.text();
    assert.match(html, /<span>Contoso<\/span>/);
    assert.match(html, /<a href="\/help" rel="noreferrer">Contact Contoso support<\/a>/);
    assert.match(response.headers.get('content-security-policy') ?? '', /img-src 'self' https:;/);
    assert.doesNotMatch(response.headers.get('content-security-policy') ?? '', /unsafe-inline/);
  });

  it('brands the gateway error page and allows the logo origin in its CSP', async () => {
    const response = await fetch(`${server.publicUrl}/interaction/no-such-uid`, { headers: { accept: 'text/html' } });
    assert.ok(response.status >= 400);
    const html = await response.text();
    assert.match(html, /<img class="logo" src="https:\/\/cdn\.contoso\.example\/logo\.svg"/);
    assert.match(html, /<title>[^<]+ · Contoso<\/title>/);
    assert.match(response.headers.get('content-security-policy') ?? '', /img-src 'self' data: https:\/\/cdn\.contoso\.example;/);
  });

  it("brands oidc-provider's own error page (an unknown client) and allows the logo there too", async () => {
    const response = await fetch(`${server.publicUrl}/authorize?client_id=no-such-client&response_type=code`);
    const html = await response.text();
    assert.match(html, /<span>Contoso<\/span>/);
    assert.match(response.headers.get('content-security-policy') ?? '', /img-src 'self' https:\/\/cdn\.contoso\.example;/);
  });
});
