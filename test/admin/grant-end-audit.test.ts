import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { CliIo } from '../../src/cli/command.ts';
import { createGrantsCommands } from '../../src/cli/commands/grants.ts';
import { runCli } from '../../src/cli/main.ts';
import { AUDIT_NAMESPACE, type AuditRecord } from '../../src/proxy/audit.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { CLIENT_REDIRECT } from '../authorization/harness.ts';
import { authorizeWithoutBrowser, type IssuedTokens } from '../support/authorize-without-browser.ts';
import { startDemo, type RunningDemo } from '../support/demo-harness.ts';
import { grantEndAudit } from '../../src/authorization/grant-end-audit.ts';
import { protectedResources } from '../../src/authorization/protected-resources.ts';
import { configSchema } from '../../src/config/schema.ts';
import type { EndedGrant } from '../../src/grants/end-grant.ts';

/**
 * Every end of a grant is an audit record, whichever path ended it, on the running gateway (started as `gatehouse
 * start` starts it) and from the CLI run beside it: method `grant/end`, the reason, whose grant it was and the MCP
 * server it was for — never a token. Before, the trail showed a user's calls stop with nothing saying why; a reused
 * refresh token (the theft signal) was in the log alone.
 */
describe('grant ends in the audit trail', () => {
  let demo: RunningDemo;
  let clientId: string;
  /** The audit file the gateway appends to (`audit.output`), and the CLI beside it too. */
  let auditFile: string;

  const authorize = (): Promise<IssuedTokens> =>
    authorizeWithoutBrowser({ origin: demo.publicUrl, clientId, resource: demo.mcpUrl, user: demo.users[0]!, scope: 'mcp:tools offline_access' });
  const tokenRequest = (path: string, form: Record<string, string>) =>
    fetch(`${demo.publicUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: clientId, ...form }) });
  const refresh = (refreshToken: string) => tokenRequest('/token', { grant_type: 'refresh_token', refresh_token: refreshToken });

  /** The `grant/end` record of `grantId`'s user and client with `reason`, once the gateway's batch reached the store. */
  const grantEndRecord = async (reason: string, tokens: IssuedTokens): Promise<AuditRecord> => {
    const { sub } = decodeJwt(tokens.access_token);
    const store = await createSqliteStore({ path: demo.sqlitePath as string, clock: systemClock, purgeIntervalMs: 0 });
    try {
      // Records are written in batches (at most 100 ms apart): wait for this one, bounded, never a fixed sleep.
      for (let attempt = 0; attempt < 200; attempt++) {
        const found = (await store.list<AuditRecord>(AUDIT_NAMESPACE)).map((entry) => entry.value).filter((record) => record.method === 'grant/end' && record.reason === reason && record.user === sub);
        if (found.length > 0) {
          assert.equal(found.length, 1, `one record per ended grant (${reason})`);
          return found[0] as AuditRecord;
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      throw new Error(`no grant ended record with reason ${reason}`);
    } finally {
      await store.close();
    }
  };

  const assertRecord = (record: AuditRecord, tokens: IssuedTokens) => {
    assert.equal(record.client, clientId);
    assert.equal(record.route, '/mcp', 'the MCP server the grant was for');
    assert.equal(record.outcome, 'allowed');
    const text = JSON.stringify(record);
    for (const token of [tokens.access_token, tokens.refresh_token]) assert.ok(!text.includes(token), 'never a token');
  };

  before(async () => {
    // No grace for a rotated refresh token: its first reuse is the theft signal.
    auditFile = join(await mkdtemp(join(tmpdir(), 'gatehouse-grant-end-')), 'audit.jsonl');
    demo = await startDemo({ config: { authorization: { refreshReuseGraceSeconds: 0 }, audit: { output: auditFile } } });
    const registered = await fetch(`${demo.publicUrl}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'Grant end audit', redirect_uris: [CLIENT_REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }),
    });
    clientId = ((await registered.json()) as { client_id: string }).client_id;
  });
  after(async () => {
    await demo?.close();
    if (auditFile) await rm(dirname(auditFile), { recursive: true, force: true });
  });

  it('a reused refresh token', async () => {
    const tokens = await authorize();
    assert.equal((await refresh(tokens.refresh_token)).status, 200);
    const reuse = await refresh(tokens.refresh_token);
    assert.equal(reuse.status, 400);
    assertRecord(await grantEndRecord('refresh_reuse', tokens), tokens);
  });

  it("the client's RFC 7009 revocation", async () => {
    const tokens = await authorize();
    assert.equal((await tokenRequest('/revoke', { token: tokens.refresh_token, token_type_hint: 'refresh_token' })).status, 200);
    assertRecord(await grantEndRecord('token_revocation', tokens), tokens);
  });

  it('`gatehouse grants revoke`, run beside the gateway', async () => {
    const tokens = await authorize();
    // A grant id is base64url, so one in 64 starts with `-`: after `--` it is read as the id, never as an option.
    const grantId = String(decodeJwt(tokens.access_token)['gid']);
    let stderr = '';
    const io: CliIo = { stdout: () => {}, stderr: (text) => (stderr += text), env: {}, cwd: process.cwd() };
    assert.equal(await runCli(['grants', 'revoke', '--yes', '--config', demo.configFile, '--', grantId], io, Object.values(createGrantsCommands())), 0, stderr);
    assertRecord(await grantEndRecord('admin', tokens), tokens);
    // Appended to the audit file the gateway writes, for the SIEM that reads it.
    const lines = (await readFile(auditFile, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as AuditRecord);
    assert.ok(lines.some((record) => record.method === 'grant/end' && record.reason === 'admin' && record.client === clientId), 'in the audit file');
  });
});

describe('the route of a grant end', () => {
  const resources = protectedResources('http://localhost:8080', configSchema.parse({ routes: [{ path: '/mcp', backend: 'http://127.0.0.1:9/mcp' }] }).routes);
  const ended = (resource: string): EndedGrant => ({ grantId: 'g', reason: 'admin', resources: [resource] });

  it('is the route the grant was for, by its path when the CLI does not know the gateway\'s port (a demo started with --port)', () => {
    assert.equal(grantEndAudit(ended('http://localhost:8080/mcp'), resources, 1).route, '/mcp');
    // The CLI's public URL is the default one; the demo ran on another port: recorded under /token before.
    assert.equal(grantEndAudit(ended('http://localhost:47700/mcp'), resources, 1).route, '/mcp');
    assert.equal(grantEndAudit(ended('http://localhost:47700/other'), resources, 1).route, '/token');
    assert.equal(grantEndAudit(ended('not a url'), resources, 1).route, '/token');
  });
});
