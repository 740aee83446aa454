import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorCatalogue, ProtocolError, type ErrorCode } from '../../src/errors/protocol-error.ts';
import { renderErrorBody } from '../../src/errors/render-error.ts';

/** The one renderer: every code in every shape; the private detail never in any body. */
describe('renderErrorBody', () => {
  const codes = Object.keys(errorCatalogue) as ErrorCode[];


  for (const code of codes) {
    it(`renders ${code} as OAuth JSON, JSON-RPC and the styled HTML page, never with its private detail`, () => {
      const error = new ProtocolError(code, 'Public words <b>here</b>.', { detail: 'secret-detail-42' });
      const json = JSON.parse(renderErrorBody(error).body) as Record<string, unknown>;
      assert.deepEqual(json, { error: code, error_description: 'Public words <b>here</b>.' });

      const rpc = JSON.parse(renderErrorBody(error, { format: 'jsonrpc', id: 7 }).body) as { id: number; error: { code: number; message: string } };
      assert.deepEqual(rpc, { jsonrpc: '2.0', id: 7, error: { code: errorCatalogue[code].jsonRpc, message: 'Public words <b>here</b>.' } });

      const page = renderErrorBody(error, { format: 'html', requestId: 'req-<1>' });
      assert.equal(page.contentType, 'text/html; charset=utf-8');
      assert.match(page.body, /<link rel="stylesheet" href="\/assets\/gatehouse\.css">/);
      assert.match(page.body, /<strong>What to do next:<\/strong> \S/);
      assert.match(page.body, new RegExp(`<code class="error-code">${code}</code>`));
      assert.match(page.body, /request id <code class="error-code">req-&lt;1&gt;<\/code>/, 'the request id, escaped');
      assert.match(page.body, /Public words &lt;b&gt;here&lt;\/b&gt;\./, 'the description, escaped');
      for (const body of [JSON.stringify(json), JSON.stringify(rpc), page.body]) assert.ok(!body.includes('secret-detail-42'));
    });
  }
});

describe("an error page's own next step", () => {
  const page = (path: `/${string}`) =>
    renderErrorBody(new ProtocolError('access_denied', 'No.', { nextStep: { text: 'Do <this>.', link: { path, label: 'Go "there"' } } }), { format: 'html' }).body;

  it('replaces the general advice, escaped, with a link on this gateway', () => {
    const body = page('/account');
    assert.match(body, /What to do next:<\/strong> Do &lt;this&gt;\. <a href="\/account">Go &quot;there&quot;<\/a>/);
    assert.doesNotMatch(body, /ask your administrator/);
  });

  it('links nowhere off the gateway, however the path is written', () => {
    for (const path of ['//evil.example', '/\\evil.example', '/\t/evil.example', '/\n/evil.example', '/ /x'] as const) {
      assert.doesNotMatch(page(path as `/${string}`), /<a /, JSON.stringify(path));
    }
  });
});
