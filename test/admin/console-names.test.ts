import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccountRecord } from '../../src/records/account.ts';
import { renderAuditPage } from '../../src/admin/pages/audit-page.ts';
import { renderClientsPage } from '../../src/admin/pages/clients-page.ts';
import { renderGrantsPage } from '../../src/admin/pages/grants-page.ts';

/**
 * Names chosen by someone else where the console does not show them as page text: the filter suggestions of the
 * audit page (<datalist> option values, which a browser shows and sends back as they are) and the Revoke buttons'
 * accessible names. A registrant's "Sample Graph MCP server\u200b" must not pass for the real one there either.
 */
const view = {
  title: 'Console',
  section: 'audit' as const,
  session: { subject: 'tenant/admin', groups: [], csrf: 'csrf', expiresAt: Date.now() + 60_000, id: 'session-1', verifiedAt: Date.now() },
  isAdmin: true,
};

const clientNames = new Map([
  ['real-graph', 'Sample Graph MCP server'],
  ['impostor', 'Sample Graph MCP server\u200b'],
  ['blank', '\u200b\u2060 '],
  ['lone-surrogate', 'Graph\ud800'],
  ['nul', 'Graph\u0000app'],
  ['line-break', 'Graph\r\napp'],
  ['escape', 'Graph\u001b[2Japp'],
  ['reversed', 'Graph \u202eppa'],
]);

const options = (page: string, list: string): string[] => {
  const datalist = new RegExp(`<datalist id="${list}">([\\s\\S]*?)</datalist>`).exec(page)?.[1] ?? '';
  return [...datalist.matchAll(/<option value="([^"]*)"><\/option>/g)].map((match) => match[1]!);
};

describe('console names outside the page text', () => {
  it('offers as a filter suggestion only a value that shows itself and comes back as it is; a client by its id otherwise', () => {
    const accounts = new Map<string, AccountRecord>([
      ['tenant/eve', { subject: 'tenant/eve', name: 'Eve\u202e', email: 'eve@example.com' } as AccountRecord],
      ['tenant/mallory', { subject: 'tenant/mallory', name: 'Mallory', email: 'mallory\u0000@example.com' } as AccountRecord],
    ]);
    const page = renderAuditPage(view, { entries: [], truncated: false }, { window: '24h' }, { accounts, clientNames });
    assert.deepEqual(options(page, 'audit-clients'), ['Sample Graph MCP server', 'blank', 'escape', 'impostor', 'line-break', 'lone-surrogate', 'nul', 'reversed']);
    assert.deepEqual(options(page, 'audit-users'), ['Mallory', 'eve@example.com']);
  });

  it('names a Revoke button by what the page shows: invisible characters as code points, a client with no visible name by its id', () => {
    const client = (clientId: string) => ({ clientId, name: clientNames.get(clientId), type: 'dcr' as const, redirectHosts: [], redirectUris: [], activeGrants: 1 });
    const clients = renderClientsPage({ ...view, section: 'clients' }, [client('impostor'), client('blank')]);
    assert.ok(clients.includes('aria-label="Revoke all grants of Sample Graph MCP server\\u200b"'), clients);
    assert.ok(clients.includes('aria-label="Revoke all grants of blank"'), clients);

    const grant = { grantId: 'g-1', subject: 'tenant/eve', clientId: 'blank', scopes: [], resources: [], resourceScopes: {} };
    const accounts = new Map<string, AccountRecord>([['tenant/eve', { subject: 'tenant/eve', name: 'Eve', email: '\u200b' } as AccountRecord]]);
    const grants = renderGrantsPage({ ...view, section: 'grants' }, [grant], accounts, clientNames);
    assert.ok(grants.includes('aria-label="Revoke access of blank for Eve"'), grants);
  });
});
