import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { AUDIT_OUTCOMES, type AuditEntry } from '../../src/admin/audit-query.ts';
import { renderAuditPage } from '../../src/admin/pages/audit-page.ts';

/**
 * A client closing its own stream is a normal end (`client_closed`): the console lists and filters it, and never
 * colours it as a failure the way it colours `denied` and `error`.
 */
const view = {
  title: 'Audit',
  section: 'audit' as const,
  session: { subject: 'tenant/admin', groups: [], csrf: 'csrf', expiresAt: Date.now() + 60_000, id: 'session-1', verifiedAt: Date.now() },
  isAdmin: true,
};
const record = (outcome: AuditEntry['outcome']) =>
  ({ id: outcome, time: Date.now(), route: '/mcp', method: 'sse/connect', outcome, status: 200, durationMs: 5, bytesIn: 0, bytesOut: 10 }) satisfies AuditEntry;
const directory = { accounts: new Map(), clientNames: new Map() };

/** The outcome classes the stylesheet paints in the danger colour. */
function dangerOutcomes(): string[] {
  const css = readFileSync(new URL('../../src/admin/admin.css', import.meta.url), 'utf8');
  const rules = css.split('}').filter((rule) => rule.includes('var(--danger)'));
  return rules.flatMap((rule) => [...rule.matchAll(/\.outcome\.([a-z_]+)/g)].map((match) => match[1]!));
}

describe('audit page outcomes', () => {
  it('shows client_closed as a neutral outcome and offers it as a filter', () => {
    const page = renderAuditPage(view, { entries: [record('client_closed')], truncated: false }, { window: '24h' }, directory);
    assert.match(page, /<span class="outcome client_closed">client closed<\/span>/);
    assert.match(page, /<option value="client_closed">/);
    assert.deepEqual(dangerOutcomes().sort(), ['denied', 'error']);
  });

  it('knows every outcome the gateway records', () => {
    assert.deepEqual([...AUDIT_OUTCOMES], ['allowed', 'denied', 'error', 'client_closed', 'server_closed']);
  });
});
