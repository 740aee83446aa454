import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLIENT_NAMESPACE, GRANT_NAMESPACE, REGISTRATION_TOKEN_NAMESPACE, type AdminDeps } from '../../src/admin/admin-deps.ts';
import { pruneRegistrations, unusedRegistrations } from '../../src/admin/registration-prune.ts';
import { endGrant, listGrants } from '../../src/admin/grants.ts';
import type { AdminCommandDependencies } from '../../src/cli/admin-command.ts';
import type { CliIo } from '../../src/cli/command.ts';
import { createClientsCommands } from '../../src/cli/commands/clients.ts';
import { runCli } from '../../src/cli/main.ts';
import { loadConfig } from '../../src/config/load.ts';
import { appOnlyTokenRecord, clientGrantedRecord } from '../../src/records/authorization.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createOidcAdapter } from '../../src/store/oidc-adapter.ts';
import { openStore } from '../../src/store/open-store.ts';
import { writeRecord } from '../../src/store/record-access.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { REVOKED_GRANT_NAMESPACE } from '../../src/grants/revoked-grants.ts';
import { authorizeUrl, CLIENT_REDIRECT, obtainTokens, pkcePair, registerPublicClient, startAuthorizationServer, tokenRequest } from '../authorization/harness.ts';
import { startedForSuite } from '../support/suite-server.ts';

/**
 * `gatehouse clients prune` (src/admin/registration-prune.ts): dynamic registrations that no user has a grant for,
 * older than a window, deleted with their registration access tokens; anything in use kept.
 */
describe('gatehouse clients prune', () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12));
  const dependencies: AdminCommandDependencies = { clock, openStore: (config) => openStore(config.store, { clock }) };
  const clients = createClientsCommands(dependencies);
  let directory: string;
  let configFile: string;
  let inspect: Store;
  const hoursAgo = (hours: number) => Math.floor(clock.now() / 1000) - hours * 3600;

  const cli = async (...argv: string[]) => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text), env: {}, cwd: directory };
    const code = await runCli([...argv, '--config', configFile], io, [clients.list, clients.prune]);
    return { code, stdout, stderr };
  };

  async function register(clientId: string, issuedHoursAgo: number): Promise<void> {
    const Adapter = createOidcAdapter(inspect, clock);
    await new Adapter('Client').upsert(clientId, { client_id: clientId, client_id_issued_at: hoursAgo(issuedHoursAgo), redirect_uris: ['http://127.0.0.1:9/cb'] });
    await new Adapter('RegistrationAccessToken').upsert(`rat-of-${clientId}`, { clientId, kind: 'RegistrationAccessToken' });
  }
  async function grant(grantId: string, clientId: string, ttlSeconds: number): Promise<void> {
    const Adapter = createOidcAdapter(inspect, clock);
    await new Adapter('Grant').upsert(grantId, { jti: grantId, kind: 'Grant', accountId: 'alice', clientId, openid: { scope: 'openid' }, iat: hoursAgo(0) }, ttlSeconds);
  }
  /** The admin's deps over the test's store, running `before` as the client `clientId` is deleted (a race, a failure). */
  async function depsDeletingClient(clientId: string, before: () => unknown): Promise<AdminDeps> {
    const { config } = await loadConfig({ file: configFile, env: {}, cwd: directory });
    const store = Object.create(inspect) as Store;
    store.delete = async (namespace, key) => {
      if (namespace === CLIENT_NAMESPACE && key === clientId) await before();
      return inspect.delete(namespace, key);
    };
    return { store, clock, config };
  }
  const registered = async () => (await inspect.list<unknown>(CLIENT_NAMESPACE)).map((entry) => entry.key).sort();
  const tokensOf = async () => (await inspect.list<{ clientId: string }>(REGISTRATION_TOKEN_NAMESPACE)).map((entry) => entry.value.clientId).sort();

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gatehouse-registration-prune-'));
    const database = join(directory, 'gatehouse.db');
    configFile = join(directory, 'gatehouse.yaml');
    await writeFile(
      configFile,
      ['mode: demo', 'store:', `  sqlitePath: ${JSON.stringify(database)}`, 'authorization:', '  clients:', '    - clientId: configured-app', '      redirectUris: ["https://configured.example/cb"]', ''].join('\n'),
    );
    inspect = await createSqliteStore({ path: database, clock, purgeIntervalMs: 0 });
    await register('old-unused', 48);
    await register('young-unused', 1);
    await register('old-granted', 48);
    await grant('grant-live', 'old-granted', 86_400);
    await register('old-grant-ended', 48);
    await grant('grant-short', 'old-grant-ended', 60);
    await register('old-granted-lately', 48);
    await writeRecord(inspect, clientGrantedRecord, 'old-granted-lately', { at: clock.now() }, { ttlSeconds: 3600 });
    await register('old-app-only', 48);
    await writeRecord(inspect, appOnlyTokenRecord, 'app-token-1', { clientId: 'old-app-only' }, { ttlSeconds: 3600, indexes: { client: 'old-app-only' } });
    clock.advance(120_000); // grant-short has ended
  });
  after(async () => {
    await inspect.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('refuses a window that is no age or time with exit 2, and a run with something to delete without --yes off a terminal', async () => {
    const garbage = await cli('clients', 'prune', '--older-than', 'yesterday', '--yes');
    assert.equal(garbage.code, 2);
    assert.match(garbage.stderr, /--older-than "yesterday" is not an age or a time/);
    const unconfirmed = await cli('clients', 'prune');
    assert.equal(unconfirmed.code, 2);
    assert.match(unconfirmed.stderr, /"gatehouse clients prune" cannot be undone and stdin is not a terminal to confirm it: pass --yes/);
    assert.deepEqual(await registered(), ['old-app-only', 'old-grant-ended', 'old-granted', 'old-granted-lately', 'old-unused', 'young-unused']);
    for (const window of ['30m', '0s', '2099-01-01T00:00:00Z']) {
      const tooYoung = await cli('clients', 'prune', '--older-than', window, '--yes');
      assert.equal(tooYoung.code, 2, window);
      assert.match(tooYoung.stderr, /is less than an hour ago: a registration that young may be in the middle of its first sign-in/);
    }
  });

  it('deletes the registrations older than a day without a live grant, a recent one or an app-only token, with their registration tokens', async () => {
    const result = await cli('clients', 'prune', '--yes', '--json');
    assert.equal(result.code, 0, result.stderr);
    const output = JSON.parse(result.stdout) as { deleted: Array<{ clientId: string }>; keptInUse: string[] };
    // old-grant-ended: its grant ended, and none was saved for it lately (no client-granted record: a grant older than
    // its lifetime and a day). old-granted-lately: its grant ended too, but a user granted it lately.
    assert.deepEqual(output.deleted.map((client) => client.clientId).sort(), ['old-grant-ended', 'old-unused']);
    assert.deepEqual(output.keptInUse, [], 'a client with an app-only token or a recent grant is in use, not listed');
    assert.deepEqual(await registered(), ['old-app-only', 'old-granted', 'old-granted-lately', 'young-unused']);
    assert.deepEqual(await tokensOf(), ['old-app-only', 'old-granted', 'old-granted-lately', 'young-unused']);
    assert.ok(await inspect.get(GRANT_NAMESPACE, 'grant-live'), 'a client in use keeps its grant');
  });

  it('takes a shorter window, names what it deleted, and says so when there is nothing to delete (exit 0, no question)', async () => {
    const nothing = await cli('clients', 'prune');
    assert.equal(nothing.code, 0, nothing.stderr);
    assert.equal(nothing.stdout, 'No dynamic registration registered before 2026-04-30T12:02:00Z is unused.\n');
    const shorter = await cli('clients', 'prune', '--older-than', '1h', '--yes');
    assert.equal(shorter.code, 0, shorter.stderr);
    assert.equal(shorter.stdout, 'Deleted 1 of 1 unused dynamic registration(s); their client ids no longer work (a client that comes back registers again).\n  young-unused\n');
    assert.deepEqual(await registered(), ['old-app-only', 'old-granted', 'old-granted-lately']);
  });

  it('keeps a registration a user began to use after it was listed, and ends a grant made as it was deleted', async () => {
    await register('raced-kept', 48);
    await register('raced-deleted', 48);
    // A grant that lands after the check and before the delete: the store's delete of the client makes one.
    const deps = await depsDeletingClient('raced-deleted', () => grant('grant-late', 'raced-deleted', 86_400));
    const listed = await unusedRegistrations(deps, clock.now() - 3_600_000);
    assert.deepEqual(listed.map((client) => client.clientId).sort(), ['raced-deleted', 'raced-kept']);
    await grant('grant-raced', 'raced-kept', 86_400);
    // And one a replica of a previous version wrote meanwhile, without the client index.
    await inspect.set(GRANT_NAMESPACE, 'grant-unindexed', { kind: 'Grant', accountId: 'bob', clientId: 'raced-deleted' }, { ttlSeconds: 86_400, indexes: { accountId: 'bob' } });
    const result = await pruneRegistrations(deps, listed);
    assert.deepEqual(result.keptInUse, ['raced-kept']);
    assert.deepEqual(result.deleted.map((client) => client.clientId), ['raced-deleted']);
    assert.deepEqual(result.endedGrants.sort(), ['grant-late', 'grant-unindexed']);
    for (const grantId of ['grant-late', 'grant-unindexed']) {
      assert.equal(await inspect.get(GRANT_NAMESPACE, grantId), undefined, `${grantId} ended`);
      assert.ok(await inspect.get(REVOKED_GRANT_NAMESPACE, grantId), `${grantId} refused on every replica`);
    }
    assert.ok(await inspect.get(CLIENT_NAMESPACE, 'raced-kept'));
  });

  it('stops where the store fails, saying what it did: the registration deleted before its tokens, never a token without its client', async () => {
    await register('outage-first', 48);
    await register('outage-second', 48);
    const deps = await depsDeletingClient('outage-second', () => {
      throw new StoreUnavailableError('the SQLite store is unavailable: disk I/O error');
    });
    const listed = (await unusedRegistrations(deps, clock.now() - 3_600_000)).sort((a, b) => a.clientId.localeCompare(b.clientId));
    assert.deepEqual(listed.map((client) => client.clientId), ['outage-first', 'outage-second']);
    const result = await pruneRegistrations(deps, listed);
    assert.deepEqual(result.deleted.map((client) => client.clientId), ['outage-first']);
    assert.match(result.stopped ?? '', /disk I\/O error/);
    assert.ok(await inspect.get(CLIENT_NAMESPACE, 'outage-second'));
    assert.ok((await tokensOf()).includes('outage-second'), 'the client that stayed keeps its registration token');
    assert.ok(!(await tokensOf()).includes('outage-first'));
  });
});

describe('a pruned registration at the authorization server', () => {
  const server = startedForSuite(() => startAuthorizationServer());

  it('refuses the pruned client id at /authorize and /token, while a client with a grant keeps refreshing', async () => {
    const used = await registerPublicClient(server);
    const unused = await registerPublicClient(server);
    const tokens = await obtainTokens(server, used);
    const deps: AdminDeps = { store: server.store, clock: server.ctx.clock, config: server.ctx.config };
    const listed = await unusedRegistrations(deps, server.ctx.clock.now() + 1_000);
    assert.deepEqual(listed.map((client) => client.clientId), [unused.client_id]);
    // The grant the sign-in saved says the client was granted lately, beside the grant itself.
    assert.ok(await server.store.get(clientGrantedRecord.namespace, used.client_id));
    const result = await pruneRegistrations(deps, listed);
    assert.deepEqual(result.deleted.map((client) => client.clientId), [unused.client_id]);

    const { challenge } = pkcePair();
    const authorize = await fetch(
      authorizeUrl(server, { client_id: unused.client_id, redirect_uri: CLIENT_REDIRECT, response_type: 'code', code_challenge: challenge, code_challenge_method: 'S256', resource: server.resource, scope: 'mcp:tools' }),
      { redirect: 'manual' },
    );
    assert.equal(authorize.status, 400, 'an unknown client id is a page, never a redirect');
    const token = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: unused.client_id });
    assert.equal(token.status, 401);
    assert.equal(((await token.json()) as { error: string }).error, 'invalid_client');
    const refreshed = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: used.client_id });
    assert.equal(refreshed.status, 200, await refreshed.clone().text());
    // Disconnected (its grant ended): not taken for a registration nobody used, as it would have been by its grants alone.
    for (const grant of await listGrants(deps, { client: used.client_id })) assert.ok(await endGrant(deps, grant.grantId, 'account'));
    assert.equal((await listGrants(deps, { client: used.client_id })).length, 0);
    assert.deepEqual(await unusedRegistrations(deps, server.ctx.clock.now() + 1_000), []);
  });
});
