import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AdminCommandDependencies } from '../../src/cli/admin-command.ts';
import { GRANT_NAMESPACE, REFRESH_TOKEN_NAMESPACE, CLIENT_NAMESPACE, REGISTRATION_TOKEN_NAMESPACE } from '../../src/admin/admin-deps.ts';
import type { CliCommand, CliIo } from '../../src/cli/command.ts';
import { createAuditCommands } from '../../src/cli/commands/audit.ts';
import { createClientsCommands } from '../../src/cli/commands/clients.ts';
import { createDoctorCommand } from '../../src/cli/commands/doctor.ts';
import { checkBackends, checkUpstream } from '../../src/admin/doctor.ts';
import { configSchema } from '../../src/config/schema.ts';
import { freePort } from '../support/ports.ts';
import { createGrantsCommands } from '../../src/cli/commands/grants.ts';
import { createStoreCommands } from '../../src/cli/commands/store.ts';
import { createUsersCommands } from '../../src/cli/commands/users.ts';
import { runCli } from '../../src/cli/main.ts';
import { rotateKeys } from '../../src/keys/rotation.ts';
import { createRevokedGrantsCache, REVOKED_GRANT_NAMESPACE } from '../../src/grants/revoked-grants.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ManualClock, systemClock } from '../../src/runtime/clock.ts';
import { oidcRecords } from '../../src/store/oidc-records.ts';
import { openStore } from '../../src/store/open-store.ts';
import { createOidcAdapter } from '../../src/store/oidc-adapter.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { ALICE, auditRecord, BOB, CIMD_CLIENT, CONFIGURED_CLIENT, DCR_CLIENT, GRANTS, seedAudit, seedStore } from './seed.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('admin CLI against a SQLite store seeded through the oidc adapter', () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12));
  const dependencies: AdminCommandDependencies = { clock, openStore: (config) => openStore(config.store, { clock }) };
  const clients = createClientsCommands(dependencies);
  const grants = createGrantsCommands(dependencies);
  const users = createUsersCommands(dependencies);
  const audit = createAuditCommands(dependencies);
  const store = createStoreCommands(dependencies);
  const all: CliCommand[] = [clients.list, clients.show, clients.revoke, grants.list, grants.revoke, users.list, audit.tail, store.purgeExpired];
  let directory: string;
  let configFile: string;
  let database: string;
  let inspect: Store;

  const cli = async (...argv: string[]): Promise<Run> => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text), env: {}, cwd: directory };
    const code = await runCli([...argv, '--config', configFile], io, all);
    return { code, stdout, stderr };
  };
  const json = async <T>(...argv: string[]): Promise<T> => {
    const result = await cli(...argv, '--json');
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as T;
  };

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gatehouse-admin-cli-'));
    database = join(directory, 'gatehouse.db');
    configFile = join(directory, 'gatehouse.yaml');
    await writeFile(
      configFile,
      [
        'mode: demo',
        'store:',
        `  sqlitePath: ${JSON.stringify(database)}`,
        'authorization:',
        '  clients:',
        `    - clientId: ${CONFIGURED_CLIENT}`,
        '      name: Configured App',
        '      redirectUris: ["https://configured.example/cb"]',
        '',
      ].join('\n'),
    );
    inspect = await createSqliteStore({ path: database, clock, purgeIntervalMs: 0 });
    await seedStore(inspect, clock);
    await seedAudit(inspect, [
      auditRecord({ time: clock.now() - 3 * 3_600_000, tool: 'echo' }),
      auditRecord({ time: clock.now() - 20 * 60_000, tool: 'hello', user: BOB.subject }),
      auditRecord({ time: clock.now() - 5 * 60_000, tool: 'me', outcome: 'denied', status: 403 }),
    ]);
  });
  after(async () => {
    await inspect.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('lists clients of all three kinds with their grants and redirect hosts', async () => {
    const { clients: listed } = await json<{ clients: { clientId: string; type: string; activeGrants: number; redirectHosts: string[] }[] }>('clients', 'list');
    const byId = new Map(listed.map((client) => [client.clientId, client]));
    assert.equal(byId.get(DCR_CLIENT)?.type, 'dcr');
    assert.equal(byId.get(DCR_CLIENT)?.activeGrants, 2);
    assert.deepEqual(byId.get(DCR_CLIENT)?.redirectHosts, ['127.0.0.1:6274', 'app.example']);
    assert.equal(byId.get(CIMD_CLIENT)?.type, 'cimd');
    assert.equal(byId.get(CONFIGURED_CLIENT)?.type, 'pre-registered');
    assert.equal(byId.get(CONFIGURED_CLIENT)?.activeGrants, 1);

    // The demo's own clients, which it registers when it starts, as the console lists them (the CLI listed none).
    for (const demoClient of ['graph-server', 'enterprise-chat', 'demo-workload']) assert.equal(byId.get(demoClient)?.type, 'pre-registered', demoClient);
    assert.equal((await cli('clients', 'show', 'graph-server')).code, 0);
    const revoked = await cli('clients', 'revoke', 'graph-server', '--yes');
    assert.equal(revoked.code, 0, revoked.stderr);
    // Not "remove it from authorization.clients": it is in no file.
    assert.match(revoked.stdout, /The demo registers it itself \(it is in no file\): it can get new tokens while the demo runs\./);


    const table = await cli('clients', 'list');
    assert.equal(table.code, 0);
    assert.match(table.stdout.split('\n')[0] ?? '', /^CLIENT ID\s+NAME\s+TYPE\s+REDIRECT HOSTS\s+CREATED\s+LAST USED\s+GRANTS$/);
    assert.equal(table.stdout.trim().split('\n').length, 1 + 3 + 3);
  });

  it('shows one client with its grants, and refuses an unknown one with one line and exit 1', async () => {
    const shown = await cli('clients', 'show', DCR_CLIENT);
    assert.equal(shown.code, 0);
    assert.match(shown.stdout, /Type:\s+dcr/);
    assert.ok(shown.stdout.includes(GRANTS.aliceDcr) && shown.stdout.includes(GRANTS.bobDcr));
    const missing = await cli('clients', 'show', 'nope');
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    assert.match(missing.stderr, /no client "nope"/);
  });

  it('prints a stored name\'s terminal controls and bidi overrides escaped, in lines, tables and questions; --json keeps it exact', async () => {
    // A registrant chooses client_name: an ESC sequence would retitle or recolour the operator's terminal, U+202E
    // would make the line read backwards.
    const hostile = 'Evil\u001b]0;pwned\u0007\u001b[2J\u202eppa\nRedirect URIs: https://legit.example/cb';
    const id = 'dcr-hostile-name';
    const Adapter = createOidcAdapter(inspect, clock);
    await new Adapter('Client').upsert(id, { client_id: id, client_name: hostile, redirect_uris: ['https://hostile.example/cb'], token_endpoint_auth_method: 'none' });
    try {
      // A line break too: it would print a line of the registrant's among the command's own.
      const escaped = 'Evil\\x1b]0;pwned\\x07\\x1b[2J\\u202eppa\\x0aRedirect URIs: https://legit.example/cb';
      const shown = await cli('clients', 'show', id);
      assert.equal(shown.code, 0, shown.stderr);
      assert.ok(shown.stdout.includes(`Name:          ${escaped}\n`), shown.stdout);
      const listed = await cli('clients', 'list');
      assert.ok(listed.stdout.includes(escaped), listed.stdout);
      for (const output of [shown.stdout, listed.stdout]) {
        // oxlint-disable-next-line no-control-regex
        assert.doesNotMatch(output, /[\u001b\u0007\u202e]/);
      }
      const asked = await onTerminal('n', 'clients', 'revoke', id);
      assert.deepEqual(asked.asked, [`Revoke client ${id} (${escaped}) and its 0 grant(s) on every replica? [y/N] `]);
      const { client } = await json<{ client: { name: string } }>('clients', 'show', id);
      assert.equal(client.name, hostile);
    } finally {
      await new Adapter('Client').destroy(id);
    }
  });

  it('filters grants by user and by client, with the last token issuance as last use', async () => {
    const { grants: alice } = await json<{ grants: { grantId: string; lastUsedAt?: string; scopes: string[] }[] }>('grants', 'list', '--user', ALICE.subject);
    assert.deepEqual(alice.map((grant) => grant.grantId).sort(), [GRANTS.aliceCimd, GRANTS.aliceDcr].sort());
    const dcr = alice.find((grant) => grant.grantId === GRANTS.aliceDcr);
    assert.equal(dcr?.lastUsedAt, new Date(Math.floor(clock.now() / 1000) * 1000 - 300_000).toISOString().replace('.000Z', 'Z'));
    assert.deepEqual(dcr?.scopes, ['graph:read', 'mcp:tools', 'openid']);
    const { grants: byClient } = await json<{ grants: { grantId: string }[] }>('grants', 'list', '--client', DCR_CLIENT, '--user', BOB.subject);
    assert.deepEqual(byClient.map((grant) => grant.grantId), [GRANTS.bobDcr]);
  });

  it('finds a grant written before the grant indexes existed, as the first command run after an upgrade', async () => {
    const now = Math.floor(clock.now() / 1000);
    const old = { kind: 'Grant', accountId: 'tenant-1/dana', clientId: 'old-client', iat: now - 60, exp: now + 3600, openid: { scope: 'openid' } };
    await inspect.set(GRANT_NAMESPACE, 'grant-before-indexes', old, { ttlSeconds: 3600 });
    const { grants: dana } = await json<{ grants: { grantId: string }[] }>('grants', 'list', '--user', 'tenant-1/dana');
    assert.deepEqual(dana.map((grant) => grant.grantId), ['grant-before-indexes']);
    await inspect.delete(GRANT_NAMESPACE, 'grant-before-indexes');
  });

  it('lists users with last seen and grant counts', async () => {
    const { users: listed } = await json<{ users: { subject: string; activeGrants: number; email: string }[] }>('users', 'list');
    assert.deepEqual(listed.map((user) => [user.subject, user.activeGrants]).sort(), [[ALICE.subject, 2], [BOB.subject, 2]]);
    const table = await cli('users', 'list');
    assert.ok(table.stdout.includes('alice@example.com'));
  });

  it('tails the audit log by user, tool, outcome and relative or ISO --since', async () => {
    const last = await json<{ records: { tool: string }[] }>('audit', 'tail');
    assert.deepEqual(last.records.map((record) => record.tool), ['me', 'hello', 'echo']);
    const recent = await json<{ records: { tool: string }[] }>('audit', 'tail', '--since', '30m');
    assert.deepEqual(recent.records.map((record) => record.tool), ['me', 'hello']);
    const iso = new Date(clock.now() - 10 * 60_000).toISOString();
    assert.deepEqual((await json<{ records: { tool: string }[] }>('audit', 'tail', '--since', iso)).records.map((record) => record.tool), ['me']);
    const bob = await json<{ records: { user: string }[] }>('audit', 'tail', '--user', BOB.subject);
    assert.deepEqual(bob.records.map((record) => record.user), [BOB.subject]);
    const echo = await json<{ records: { tool: string }[] }>('audit', 'tail', '--tool', 'echo');
    assert.deepEqual(echo.records.map((record) => record.tool), ['echo']);
    const denied = await json<{ records: { tool: string }[] }>('audit', 'tail', '--outcome', 'denied');
    assert.deepEqual(denied.records.map((record) => record.tool), ['me']);
    const limited = await json<{ records: unknown[] }>('audit', 'tail', '--limit', '1');
    assert.equal(limited.records.length, 1);
  });

  for (const garbage of ['yesterday', '15x', '2026-13-45', '-5m', '']) {
    it(`refuses --since ${JSON.stringify(garbage)} with one line and exit code 2`, async () => {
      const result = await cli('audit', 'tail', '--since', garbage);
      assert.equal(result.code, 2);
      assert.equal(result.stdout, '');
      assert.equal(result.stderr.trim().split('\n').length, 1);
      assert.match(result.stderr, /--since .* is not a time: use ISO 8601/);
    });
  }

  it('refuses a revocation of a grant that does not exist with exit 1 and changes nothing', async () => {
    const before = (await inspect.list(GRANT_NAMESPACE)).length;
    const result = await cli('grants', 'revoke', 'no-such-grant', '--yes');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^gatehouse: no grant "no-such-grant"\n$/);
    assert.equal((await inspect.list(GRANT_NAMESPACE)).length, before);
    assert.equal(await inspect.get(REVOKED_GRANT_NAMESPACE, 'no-such-grant'), undefined);
  });

  it('revokes a grant: grant, code and refresh tokens gone, revoked for every replica', async () => {
    const cache = createRevokedGrantsCache({ store: inspect, clock });
    await cache.start();
    try {
      assert.equal(cache.isRevoked(GRANTS.bobDcr), false);
      const result = await cli('grants', 'revoke', GRANTS.bobDcr, '--yes');
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Revoked grant grant-bob-dcr/);
      assert.equal(await inspect.get(GRANT_NAMESPACE, GRANTS.bobDcr), undefined);
      assert.deepEqual(await inspect.findByIndex(REFRESH_TOKEN_NAMESPACE, 'grantId', GRANTS.bobDcr), []);
      assert.deepEqual(await inspect.findByIndex(oidcRecords.AuthorizationCode.namespace, 'grantId', GRANTS.bobDcr), []);
      assert.ok(await inspect.get(REVOKED_GRANT_NAMESPACE, GRANTS.bobDcr));
      // SQLite publishes in-process only: another process's revocation reaches a replica's cache by its re-sync.
      await cache.resync();
      assert.equal(cache.isRevoked(GRANTS.bobDcr), true);
      assert.equal(cache.isRevoked(GRANTS.aliceDcr), false);
    } finally {
      await cache.stop();
    }
  });

  it('revokes a client: every grant ended, the registration and its registration token deleted', async () => {
    const result = await cli('clients', 'revoke', DCR_CLIENT, '--json', '--yes');
    assert.equal(result.code, 0, result.stderr);
    const output = JSON.parse(result.stdout) as { revokedGrants: string[]; registrationDeleted: boolean };
    assert.deepEqual(output.revokedGrants, [GRANTS.aliceDcr]);
    assert.equal(output.registrationDeleted, true);
    assert.equal(await inspect.get(CLIENT_NAMESPACE, DCR_CLIENT), undefined);
    assert.deepEqual(await inspect.list(REGISTRATION_TOKEN_NAMESPACE), []);
    assert.ok(await inspect.get(REVOKED_GRANT_NAMESPACE, GRANTS.aliceDcr));
    assert.ok(await inspect.get(GRANT_NAMESPACE, GRANTS.aliceCimd), 'other clients keep their grants');
    const again = await cli('clients', 'revoke', DCR_CLIENT, '--yes');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no client/);
  });

  it('revokes a pre-registered client\'s grants and says its registration stays in the config', async () => {
    const result = await cli('clients', 'revoke', CONFIGURED_CLIENT, '--yes');
    assert.equal(result.code, 0);
    assert.match(result.stdout, /Revoked 1 grant\(s\).*\n.*remove it there/);
    assert.equal(await inspect.get(GRANT_NAMESPACE, GRANTS.bobConfigured), undefined);
  });

  /** The CLI as run from a terminal whose operator types `answer` at the prompt. */
  const onTerminal = async (answer: string, ...argv: string[]): Promise<Run & { asked: string[] }> => {
    let stdout = '';
    let stderr = '';
    const asked: string[] = [];
    const io: CliIo = {
      stdout: (text) => (stdout += text),
      stderr: (text) => (stderr += text),
      env: {},
      cwd: directory,
      stdinIsTTY: true,
      ask: async (question) => {
        asked.push(question);
        return answer;
      },
    };
    const code = await runCli([...argv, '--config', configFile], io, all);
    return { code, stdout, stderr, asked };
  };

  for (const argv of [['clients', 'revoke', CIMD_CLIENT], ['grants', 'revoke', GRANTS.aliceCimd]]) {
    it(`${argv.slice(0, 2).join(' ')} without --yes and without a terminal refuses (exit 2) and changes nothing`, async () => {
      const result = await cli(...argv);
      assert.equal(result.code, 2);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, new RegExp(`^gatehouse: "gatehouse ${argv.slice(0, 2).join(' ')}" cannot be undone and stdin is not a terminal to confirm it: pass --yes\n$`));
      assert.ok(await inspect.get(GRANT_NAMESPACE, GRANTS.aliceCimd));
    });
  }

  it('asks on a terminal, naming the client and its grants: "n" (or Enter) cancels with exit 1, "y" revokes', async () => {
    for (const answer of ['n', '', 'sure']) {
      const refused = await onTerminal(answer, 'clients', 'revoke', CIMD_CLIENT);
      assert.equal(refused.code, 1);
      assert.deepEqual(refused.asked, [`Revoke client ${CIMD_CLIENT} and its 1 grant(s) on every replica? [y/N] `]);
      assert.match(refused.stderr, /^Cancelled: nothing changed\.\n$/);
      assert.ok(await inspect.get(GRANT_NAMESPACE, GRANTS.aliceCimd), `grant kept after answering ${JSON.stringify(answer)}`);
    }
    const confirmed = await onTerminal('y', 'clients', 'revoke', CIMD_CLIENT);
    assert.equal(confirmed.code, 0, confirmed.stderr);
    assert.match(confirmed.stdout, /^Revoked 1 grant\(s\) of /);
    assert.equal(await inspect.get(GRANT_NAMESPACE, GRANTS.aliceCimd), undefined);
  });

  it('asks nothing with --yes on a terminal, and checks the target exists before asking', async () => {
    const missing = await onTerminal('y', 'grants', 'revoke', 'no-such-grant');
    assert.equal(missing.code, 1);
    assert.deepEqual(missing.asked, []);
    const withYes = await onTerminal('n', 'clients', 'revoke', CONFIGURED_CLIENT, '--yes');
    assert.equal(withYes.code, 0, withYes.stderr);
    assert.deepEqual(withYes.asked, []);
  });

  it('purges expired records', async () => {
    clock.advance(2 * 3600_000); // refresh tokens (1 h) and the code (60 s) are now expired
    const result = await json<{ removed: number; store: string }>('store', 'purge-expired');
    assert.equal(result.store, 'sqlite');
    assert.ok(result.removed >= 1, `removed ${result.removed}`);
    assert.equal((await json<{ removed: number }>('store', 'purge-expired')).removed, 0);
  });
});

describe('admin CLI with the store unreachable', () => {
  let directory: string;
  let configFile: string;
  let port: number;

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gatehouse-admin-down-'));
    // A port nothing listens on: take a free one and release it.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    configFile = join(directory, 'gatehouse.yaml');
    await writeFile(configFile, `mode: demo\nstore:\n  type: redis\n  redisUrl: redis://:s3cret-pass@127.0.0.1:${port}\n`);
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const commands = [
    ['grants', 'list'],
    ['clients', 'revoke', 'x', '--yes'],
    ['users', 'list'],
    ['audit', 'tail'],
    ['store', 'purge-expired'],
  ];
  for (const argv of commands) {
    it(`${argv.join(' ')}: one line naming Redis, exit 1, no stack, no password`, async () => {
      let stdout = '';
      let stderr = '';
      const io: CliIo = { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text), env: {}, cwd: directory };
      const all = [
        ...Object.values(createClientsCommands()),
        ...Object.values(createGrantsCommands()),
        ...Object.values(createUsersCommands()),
        ...Object.values(createAuditCommands()),
        ...Object.values(createStoreCommands()),
      ];
      const code = await runCli([...argv, '--config', configFile], io, all);
      assert.equal(code, 1);
      assert.equal(stdout, '');
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.match(stderr, new RegExp(`^gatehouse: store unavailable: Redis at 127\\.0\\.0\\.1:${port} is unreachable`));
      assert.ok(!stderr.includes('s3cret-pass') && !stderr.includes('    at '), stderr);
    });
  }

  it('clients revoke without --yes off a terminal is refused (exit 2) before the store is opened', async () => {
    let stderr = '';
    const io: CliIo = { stdout: () => {}, stderr: (text) => (stderr += text), env: {}, cwd: directory };
    const code = await runCli(['clients', 'revoke', 'x', '--config', configFile], io, Object.values(createClientsCommands()));
    assert.equal(code, 2);
    assert.match(stderr, /pass --yes\n$/);
    assert.ok(!stderr.includes('Redis'), stderr);
  });

  it('audit tail still reports a garbage --since as a usage error (exit 2) before touching the store', async () => {
    let stderr = '';
    const io: CliIo = { stdout: () => {}, stderr: (text) => (stderr += text), env: {}, cwd: directory };
    const code = await runCli(['audit', 'tail', '--since', 'soon', '--config', configFile], io, Object.values(createAuditCommands()));
    assert.equal(code, 2);
    assert.match(stderr, /--since "soon" is not a time/);
  });
});

describe('gatehouse clients list with an empty store', () => {
  it("tells a demo's own client from one its file registers under the same name", async () => {
    const directory = await mkdtemp(join(tmpdir(), 'gatehouse-admin-demo-'));
    try {
      const configFile = join(directory, 'gatehouse.yaml');
      // enterprise-chat registered by the file: the demo does not add its own, and revoking it is the file's business.
      await writeFile(configFile, `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(join(directory, 'g.db'))}\nauthorization:\n  clients:\n    - clientId: enterprise-chat\n      clientSecret: a-secret-of-the-files-own-0123\n      grantTypes: ["urn:ietf:params:oauth:grant-type:jwt-bearer"]\n`);
      await (await openStore(configSchema.parse({ store: { sqlitePath: join(directory, 'g.db') } }).store, { clock: systemClock })).close();
      let stdout = '';
      const io: CliIo = { stdout: (text) => (stdout += text), stderr: () => {}, env: {}, cwd: directory };
      assert.equal(await runCli(['clients', 'revoke', 'enterprise-chat', '--yes', '--config', configFile], io, [createClientsCommands().revoke]), 0);
      assert.match(stdout, /It is configured in authorization\.clients: remove it there/);
      stdout = '';
      assert.equal(await runCli(['clients', 'revoke', 'demo-workload', '--yes', '--config', configFile], io, [createClientsCommands().revoke]), 0);
      assert.match(stdout, /The demo registers it itself/);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('lists the clients pre-registered in the config, with their name and redirect hosts', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'gatehouse-admin-empty-'));
    try {
      const configFile = join(directory, 'gatehouse.yaml');
      await writeFile(
        configFile,
        `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(join(directory, 'g.db'))}\nauthorization:\n  clients:\n    - clientId: team-app\n      name: Team App\n      redirectUris: ["https://team.example/cb", "http://127.0.0.1/cb"]\n`,
      );
      let stdout = '';
      let stderr = '';
      const io: CliIo = { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text), env: {}, cwd: directory };
      // Before the gateway made its store, an admin command says so instead of making an empty one at that path.
      assert.equal(await runCli(['clients', 'list', '--config', configFile], io, [createClientsCommands().list]), 1);
      assert.match(stderr, /there is no database at .*g\.db — the gateway creates it when it first starts/);
      assert.equal(existsSync(join(directory, 'g.db')), false);
      await (await openStore(configSchema.parse({ store: { sqlitePath: join(directory, 'g.db') } }).store, { clock: systemClock })).close();
      assert.equal(await runCli(['clients', 'list', '--config', configFile], io, [createClientsCommands().list]), 0);
      const lines = stdout.trim().split('\n');
      // The configured client, and the demo's three.
      assert.equal(lines.length, 1 + 1 + 3, stdout);
      assert.ok(lines.some((line) => /^team-app\s+Team App\s+pre-registered\s+127\.0\.0\.1,team\.example\s+-\s+-\s+0$/.test(line)), stdout);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe('gatehouse doctor: backends', () => {
  it('warns, naming the route and why, about a backend that refuses connections or has no such host; ok when each accepts', async () => {
    const listening = createServer();
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
    const open = (listening.address() as AddressInfo).port;
    const closed = await freePort();
    const config = configSchema.parse({
      routes: [
        { path: '/up', backend: `http://127.0.0.1:${open}/mcp` },
        { path: '/down', backend: `http://127.0.0.1:${closed}/mcp` },
        { path: '/nowhere', backend: 'http://no-such-host.invalid/mcp' },
      ],
    });
    try {
      const check = await checkBackends(config);
      assert.equal(check.status, 'warn');
      assert.match(check.detail, new RegExp(`/down → 127\\.0\\.0\\.1:${closed}: connection refused`));
      assert.match(check.detail, /\/nowhere → no-such-host\.invalid: (no such host|EAI_AGAIN)/);
      assert.doesNotMatch(check.detail, /\/up/);
      assert.match(check.fix ?? '', /502/);
      const healthy = await checkBackends(configSchema.parse({ routes: [{ path: '/up', backend: `http://127.0.0.1:${open}/mcp` }] }));
      assert.equal(healthy.status, 'ok');
    } finally {
      await new Promise((resolve) => listening.close(resolve));
    }
  });
});

describe('gatehouse doctor', () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12));
  let directory: string;
  let configFile: string;

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gatehouse-doctor-'));
    configFile = join(directory, 'gatehouse.yaml');
    await writeFile(configFile, `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(join(directory, 'g.db'))}\n`);
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const doctor = async (fetch: typeof globalThis.fetch, env: Record<string, string> = {}) => {
    let stdout = '';
    const io: CliIo = { stdout: (text) => (stdout += text), stderr: () => {}, env, cwd: directory };
    // The demo's backends are not running here: each route's is taken as reachable (checkBackends has its own test).
    const command = createDoctorCommand({ clock, fetch, openStore: (config) => openStore(config.store, { clock }), reachBackend: async () => undefined });
    const code = await command.run({ values: { config: configFile, json: true }, positionals: [], io });
    return { code, checks: (JSON.parse(stdout) as { checks: { name: string; status: string; fix?: string; detail: string }[] }).checks };
  };
  const discovery = (issuer: string): typeof globalThis.fetch => async (input) => {
    assert.equal(String(input), 'http://localhost:8081/.well-known/openid-configuration');
    return Response.json({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` });
  };

  it('fails the upstream check with a fix when discovery is unreachable, and warns about missing keys', async () => {
    const { code, checks } = await doctor(async () => {
      throw new TypeError('fetch failed');
    });
    assert.equal(code, 1);
    const byName = Object.fromEntries(checks.map((check) => [check.name, check]));
    assert.equal(byName.config?.status, 'ok');
    // No store yet: said, and not created by the check (an empty store where a typo pointed, reported ok, was).
    assert.equal(byName.store?.status, 'warn');
    assert.match(byName.store?.detail ?? '', /does not exist yet/);
    assert.equal(existsSync(join(directory, 'g.db')), false);
    assert.equal(byName.upstream?.status, 'fail');
    assert.match(byName.upstream?.fix ?? '', /start the demo with "gatehouse start"/);
    assert.equal(byName.keys?.status, 'warn');
    // Outside the demo, no advice about the demo's stand-ins.
    const { config } = loadConfig({ file: configFile, env: {}, cwd: directory });
    const production = await checkUpstream({ ...config, mode: 'production' }, async () => {
      throw new TypeError('fetch failed');
    });
    assert.match(production.fix ?? '', /issuer URL/);
    assert.doesNotMatch(production.fix ?? '', /demo/i);
  });

  it('passes with a matching discovery document and fresh keys; flags old keys for rotation', async () => {
    const loaded = loadConfig({ file: configFile, env: {}, cwd: directory });
    const store = await openStore(loaded.config.store, { clock });
    await rotateKeys({ store, config: loaded.config, clock });
    await store.close();
    const healthy = await doctor(discovery('http://localhost:8081'));
    assert.equal(healthy.code, 0);
    assert.deepEqual(healthy.checks.map((check) => check.status), ['ok', 'ok', 'ok', 'ok', 'ok']);

    const wrongIssuer = await doctor(discovery('http://evil.test'));
    assert.equal(wrongIssuer.code, 1);
    // What a discovery document names is printed escaped: its line break cannot forge a check's line.
    let text = '';
    const io: CliIo = { stdout: (chunk) => void (text += chunk), stderr: () => {}, env: {}, cwd: directory };
    const forging = createDoctorCommand({ clock, fetch: discovery('http://evil.test\n[ok  ] keys     all good \u001b[2J'), openStore: (config) => openStore(config.store, { clock }), reachBackend: async () => undefined });
    await forging.run({ values: { config: configFile }, positionals: [], io });
    assert.ok(!text.split('\n').some((line) => line.startsWith('[ok  ] keys     all good')), text);
    // oxlint-disable-next-line no-control-regex
    assert.doesNotMatch(text, /\u001b/);
    assert.match(wrongIssuer.checks.find((check) => check.name === 'upstream')?.detail ?? '', /names issuer http:\/\/evil\.test/);

    // What `config check` warns about, doctor says too (it said ok).
    const warned = await doctor(discovery('http://localhost:8081'), { GATEHOUSE_LOGLEVEL: 'debug' });
    assert.equal(warned.code, 0);
    const configCheck = warned.checks.find((check) => check.name === 'config');
    assert.equal(configCheck?.status, 'warn');
    assert.match(configCheck?.detail ?? '', /GATEHOUSE_LOGLEVEL/);
    assert.match(configCheck?.fix ?? '', /settings the warnings name/);

    clock.advance(100 * 86_400_000);
    const old = await doctor(discovery('http://localhost:8081'));
    assert.equal(old.code, 0);
    assert.match(old.checks.find((check) => check.name === 'keys')?.fix ?? '', /gatehouse keys rotate/);
  });
});
