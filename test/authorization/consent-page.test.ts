import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { renderConsentPage, type ConsentView } from '../../src/authorization/consent-page.ts';
import { imitatedProduct, nameSkeleton } from '../../src/authorization/product-names.ts';
import { authorize, authorizeUrl, authorizationParams, pkcePair, registerPublicClient, startAuthorizationServer, TEST_IDENTITY, TestBrowser, type TestServer } from './harness.ts';

/**
 * The consent page's words about who is asking and who is answering: an unverified client cannot borrow a
 * well-known product's name without a visible mark, every warning sits in one box, and the signed-in user is named.
 */
const view = (overrides: Partial<ConsentView> = {}): ConsentView => ({
  formAction: '/interaction/abc/decision',
  clientId: 'dcr-client',
  clientName: 'Team Notes',
  logoUri: undefined,
  isClientIdUrl: false,
  trust: 'unverified',
  redirectUri: 'https://notes.example/cb',
  resource: 'https://gatehouse.example/mcp',
  scopes: [{ name: 'mcp:tools', description: 'Use the tools' }],
  consentState: 'state',
  csrfToken: 'csrf',
  ...overrides,
});
const heading = (html: string): string => /<h1>(.*?)<\/h1>/s.exec(html)?.[1] ?? '';

describe('product look-alike names', () => {
  for (const [name, product] of [
    ['Visual Studio Code', 'Visual Studio Code'],
    ['VS Code', 'Visual Studio Code'],
    ['visual-studio-code (official)', 'Visual Studio Code'],
    ['Ｃｌａｕｄｅ', 'Claude'],
    ['\u0421laude Desktop', 'Claude'],
    ['C1aude', 'Claude'],
    ['CURSOR', 'Cursor'],
    ['Chat\u200bGPT', 'ChatGPT'],
    ['ChatGРТ', 'ChatGPT'],
    ['Cláude', 'Claude'],
    ['CIaude', 'Claude'],
    ['GitHub CopiIot', 'GitHub Copilot'],
    ['Gernini', 'Gemini'],
    ['VVindsurf', 'Windsurf'],
    ['Cla\u057Dde', 'Claude'],
    ['Curs\u0585r', 'Cursor'],
    ['MCP INSPECTOR', 'MCP Inspector'],
  ] as const) {
    it(`sees ${JSON.stringify(name)} as ${product}`, () => assert.equal(imitatedProduct(name), product));
  }
  it('leaves other names alone', () => {
    for (const name of ['Team Notes', 'Inspector <script>', '', '   ']) assert.equal(imitatedProduct(name), undefined, name);
    assert.equal(nameSkeleton('V.S. Сode'), 'vscode');
  });
});

describe('consent page rendering', () => {
  it('shows a client name without bidi controls, isolated, so it cannot reorder the sentence around it', () => {
    // U+202E (right-to-left override) would make "… wants to access your account" read backwards after the name;
    // U+2066 (an isolate) and U+200F (a mark) and a control character are as invisible and as useless in a name.
    const html = renderConsentPage(view({ clientName: 'Team\u202e Notes\u2066\u200f\u0007', signedInAs: { subject: 's', name: 'Alice\u202e' } }));
    assert.equal(heading(html), '<span class="client-name"><bdi>Team Notes</bdi></span> wants to access your account');
    assert.match(html, /Signed in as <strong><bdi>Alice<\/bdi><\/strong>/);
    assert.match(html, /<title>Allow Team Notes\? ·/);
    assert.doesNotMatch(html, /[\u202a-\u202e\u2066-\u2069\u200e\u200f]/);
    // A right-to-left name is kept as written, in its own isolate.
    assert.match(heading(renderConsentPage(view({ clientName: 'مفكرة الفريق' }))), /<bdi>مفكرة الفريق<\/bdi>/);
  });

  it('shows a name that would show as nothing as no name: the client id URL\'s host, or "An application"', () => {
    for (const clientName of ['\u200b\u2060 ', '\u2800', '\u0300', '\u3164', ' \u00a0\u3000', '\u{e0041}\u{e0042}']) {
      assert.equal(heading(renderConsentPage(view({ clientName }))), '<span class="client-name"><bdi>An application</bdi></span> wants to access your account', JSON.stringify(clientName));
      const byUrl = renderConsentPage(view({ clientName, clientId: 'https://notes.example/client.json', isClientIdUrl: true }));
      assert.equal(heading(byUrl), '<span class="client-name"><bdi>notes.example</bdi></span> wants to access your account', JSON.stringify(clientName));
    }
    assert.match(heading(renderConsentPage(view({ clientName: '\u2800Notes' }))), /Notes/);
  });

  it('shows the redirect URI as the URL it is (controls percent-encoded), never as raw text', () => {
    const html = renderConsentPage(view({ redirectUri: 'https://notes.example/\u202ecb' }));
    assert.match(html, /https:\/\/notes\.example\/%E2%80%AEcb/);
    assert.doesNotMatch(html, /\u202e/);
  });

  it('marks an unverified client named like a product "unverified" beside the name, and warns once', () => {
    const html = renderConsentPage(view({ clientName: 'Visual Studio Code', redirectUri: 'http://127.0.0.1:33418/' }));
    assert.match(heading(html), /Visual Studio Code<\/bdi><\/span> <span class="badge unverified">unverified<\/span>/);
    assert.equal(html.match(/class="notice warning"/g)?.length, 1);
    assert.match(html, /Check before you approve/);
    assert.match(html, /nothing confirms this is Visual Studio Code/);
    assert.match(html, /this computer/);
  });

  it('gives a configured or verified client of the same name no mark', () => {
    for (const trust of ['configured', 'verified'] as const) {
      const html = renderConsentPage(view({ clientName: 'Visual Studio Code', trust }));
      assert.doesNotMatch(html, /badge unverified/, trust);
      assert.doesNotMatch(html, /class="notice warning"/, trust);
    }
  });

  it('names the signed-in user, escaped', () => {
    const html = renderConsentPage(view({ signedInAs: { subject: 's', name: 'Alice <b>', email: 'alice@example.test' } }));
    assert.match(html, /Signed in as <strong><bdi>Alice &lt;b&gt;<\/bdi><\/strong> \(<bdi>alice@example\.test<\/bdi>\)/);
  });

  it('shows the organisation, logo and support link, escaped, and links the accent stylesheet', () => {
    const html = renderConsentPage(
      view({ branding: { organisationName: 'Contoso "Ops"', logoUrl: '/logo.svg', supportUrl: 'https://help.contoso.example/?a=1&b=2', accentColour: '#8a1538' } }),
    );
    assert.match(html, /<p class="brand org"><img class="logo" src="\/logo\.svg" alt=""[^>]*><span>Contoso &quot;Ops&quot;<\/span><\/p>/);
    assert.match(html, /<a href="https:\/\/help\.contoso\.example\/\?a=1&amp;b=2" rel="noreferrer">Contact Contoso &quot;Ops&quot; support<\/a>/);
    assert.match(html, /<link rel="stylesheet" href="\/assets\/branding\.css">/);
    assert.match(html, /<title>Allow Team Notes\? · Contoso &quot;Ops&quot;<\/title>/);
    assert.doesNotMatch(html, /style=/);
  });
});

describe('consent page of a browser already signed in', () => {
  let server: TestServer;
  before(async () => {
    server = await startAuthorizationServer();
  });
  after(async () => {
    await server.close();
  });

  it('says who is signed in (from the account recorded at the earlier sign-in)', async () => {
    const browser = new TestBrowser();
    const first = await registerPublicClient(server);
    const { challenge } = pkcePair();
    await authorize(server, browser, authorizationParams(server, first.client_id, challenge, { state: 'one' }));
    const second = await registerPublicClient(server, { client_name: 'Second App' });
    const { response } = await browser.follow(authorizeUrl(server, authorizationParams(server, second.client_id, challenge, { state: 'two' })), server.publicUrl);
    const html = await response.text();
    assert.match(html, new RegExp(`Signed in as <strong><bdi>${TEST_IDENTITY.name}</bdi></strong> \\(<bdi>${TEST_IDENTITY.email}</bdi>\\)`));
  });
});
