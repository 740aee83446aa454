import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyPluginAsync } from 'fastify';
import type { CliIo } from '../../src/cli/command.ts';
import { startGateway } from '../../src/app/start-gateway.ts';
import { STARTING_HANGUP_KEY } from '../../src/runtime/starting-hangup.ts';
import { startCommand } from '../../src/cli/commands/start.ts';
import { runCli } from '../../src/cli/main.ts';
import { GRANT_NAMESPACE } from '../../src/admin/admin-deps.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { isDamagedDatabase } from '../../src/store/sqlite-database.ts';
import type { GatehouseConfig } from '../../src/config/schema.ts';

function captureIo(cwd: string): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (text) => out.push(text), stderr: (text) => err.push(text), env: {}, cwd };
}

describe('gatehouse start', () => {
  let dir: string;
  let configFile: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-start-'));
    configFile = join(dir, 'gatehouse.yaml');
    await writeFile(configFile, `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(join(dir, 'gatehouse.db'))}\n`);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('serves /healthz with the SQLite store and mounted parts, then stops on SIGTERM with exit code 0', async () => {
    const io = captureIo(dir);
    const signals = new EventEmitter();
    let closedParts = false;
    const part: FastifyPluginAsync = async (app) => {
      app.get('/part', async () => ({ mounted: true }));
    };
    const running = await startGateway({
      file: configFile,
      port: '0',
      logLevel: 'silent',
      io,
      signals,
      assembleParts: async () => ({
        plugins: [part],
        banner: ['demo banner line'],
        close: async () => {
          closedParts = true;
        },
      }),
    });
    assert.match(io.out.join(''), new RegExp(`listening on ${running.url.replaceAll('.', '\\.')}`));
    assert.match(io.out.join(''), /demo banner line/);

    const health = await fetch(`${running.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await fetch(`${running.url}/readyz`);
    assert.deepEqual(await ready.json(), { status: 'ok', checks: { store: 'ok' } });
    assert.deepEqual(await (await fetch(`${running.url}/part`)).json(), { mounted: true });

    signals.emit('SIGTERM');
    assert.equal(await running.lifecycle.stopped, 0);
    assert.equal(closedParts, true);
    await assert.rejects(fetch(`${running.url}/healthz`));
  });

  it('gives grants written before the grant indexes existed their indexes before anything is served', async () => {
    const file = join(dir, 'gatehouse.db');
    const before = await createSqliteStore({ path: file, clock: systemClock, purgeIntervalMs: 0 });
    await before.set(GRANT_NAMESPACE, 'grant-from-before', { kind: 'Grant', accountId: 'someone', clientId: 'some-client' }, { ttlSeconds: 600 });
    await before.close();
    const signals = new EventEmitter();
    let found: string[] | undefined;
    const running = await startGateway({
      file: configFile,
      port: '0',
      logLevel: 'silent',
      io: captureIo(dir),
      signals,
      assembleParts: async (ctx) => {
        found = (await ctx.store.findByIndex(GRANT_NAMESPACE, 'accountId', 'someone')).map((entry) => entry.key);
        return { plugins: [] };
      },
    });
    signals.emit('SIGTERM');
    assert.equal(await running.lifecycle.stopped, 0);
    assert.deepEqual(found, ['grant-from-before']);
  });

  it('indexes, while it runs, a grant written without the indexes after its start (a replica of the previous version)', async () => {
    const signals = new EventEmitter();
    let store: Store | undefined;
    const running = await startGateway({
      file: configFile,
      port: '0',
      logLevel: 'silent',
      io: captureIo(dir),
      signals,
      grantReindexIntervalMs: 50,
      assembleParts: async (ctx) => {
        store = ctx.store;
        return { plugins: [] };
      },
    });
    try {
      await store!.set(GRANT_NAMESPACE, 'grant-from-old-replica', { kind: 'Grant', accountId: 'someone-else', clientId: 'c' }, { ttlSeconds: 600 });
      const deadline = Date.now() + 5_000;
      let found: string[] = [];
      while (found.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        found = (await store!.findByIndex(GRANT_NAMESPACE, 'accountId', 'someone-else')).map((entry) => entry.key);
      }
      assert.deepEqual(found, ['grant-from-old-replica']);
    } finally {
      signals.emit('SIGTERM');
      assert.equal(await running.lifecycle.stopped, 0);
    }
  });

  describe('when the port is taken', () => {
    let blocker: Server;
    let port: number;
    before(async () => {
      blocker = createServer();
      blocker.listen(0, '127.0.0.1');
      await once(blocker, 'listening');
      port = (blocker.address() as { port: number }).port;
    });
    after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

    it('prints one clear line and exits 2', async () => {
      const io = captureIo(dir);
      const code = await runCli(['start', '--config', configFile, '--port', String(port), '--log-level', 'silent'], io, [startCommand]);
      assert.equal(code, 2);
      assert.equal(io.err.join(''), `gatehouse: port ${port} is in use — stop the other process or pass --port\n`);
    });
  });

  /**
   * A gateway started from a file naming admin `ada`, whose file gains `grace` while it starts (as an operator edits
   * it and signals every replica): `duringStart` runs then. Resolves with the live configuration once it listens.
   */
  async function startWhileEdited(name: string, signals: EventEmitter, duringStart: () => void) {
    const file = join(dir, `${name}.yaml`);
    const written = (users: string[]) => `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(join(dir, `${name}.db`))}\nadmin:\n  users: ${JSON.stringify(users)}\n`;
    await writeFile(file, written(['ada']));
    let live: GatehouseConfig | undefined;
    const running = await startGateway({
      file,
      port: '0',
      logLevel: 'silent',
      io: captureIo(dir),
      signals,
      assembleParts: async (ctx) => {
        await writeFile(file, written(['ada', 'grace']));
        duringStart();
        live = ctx.config;
        return { plugins: [], reloadTarget: { live: ctx.config, prepare: (config) => config, knownScopes: new Set() } };
      },
    });
    return { running, live: () => live };
  }

  it('takes a SIGHUP that arrives while it starts (which would end the process unhandled) and reads the file again once it listens', async () => {
    const signals = new EventEmitter();
    let listenersWhileStarting = 0;
    const { running, live } = await startWhileEdited('hangup', signals, () => {
      listenersWhileStarting = signals.listenerCount('SIGHUP');
      signals.emit('SIGHUP');
    });
    try {
      assert.ok(listenersWhileStarting >= 1, 'handled while starting');
      // Read again once listening: the edit made after this start read the file applies.
      assert.deepEqual(live()?.admin.users, ['ada', 'grace']);
      assert.equal((await fetch(`${running.url}/healthz`)).status, 200);
    } finally {
      signals.emit('SIGTERM');
      await running.lifecycle.stopped;
    }
  });

  it('takes over a SIGHUP the command line took while its modules loaded (bin/gatehouse.js), and its listener', async () => {
    const note = { received: false, listener: () => void (note.received = true) };
    process.on('SIGHUP', note.listener);
    (globalThis as Record<symbol, unknown>)[STARTING_HANGUP_KEY] = note;
    // The signal came while the modules loaded, before the gateway could take one.
    process.emit('SIGHUP');
    const signals = new EventEmitter();
    const { running, live } = await startWhileEdited('early-hangup', signals, () => {});
    try {
      assert.deepEqual(live()?.admin.users, ['ada', 'grace']);
      assert.equal(process.listeners('SIGHUP').includes(note.listener), false, 'the early listener is gone');
      assert.equal((globalThis as Record<symbol, unknown>)[STARTING_HANGUP_KEY], undefined);
    } finally {
      process.off('SIGHUP', note.listener);
      signals.emit('SIGTERM');
      await running.lifecycle.stopped;
    }
  });

  it('rejects an unknown log level with exit code 2', async () => {
    const io = captureIo(dir);
    const code = await runCli(['start', '--log-level', 'loud'], io, [startCommand]);
    assert.equal(code, 2);
    assert.match(io.err.join(''), /--log-level must be one of/);
  });

  it('refuses to start, exit 2 naming the file, on a SQLite store that opens and then fails (corrupt pages)', async () => {
    // A store the gateway made, with grants in it, whose pages past the header were overwritten: it opens, and its
    // first read at start fails. Exit 1 had a supervisor (systemd's RestartPreventExitStatus=2) restart it in a loop.
    const path = join(dir, 'corrupt.db');
    const made = await createSqliteStore({ path, clock: systemClock, purgeIntervalMs: 0 });
    for (let i = 0; i < 200; i++) await made.set(GRANT_NAMESPACE, `grant-${i}`, { kind: 'Grant', accountId: `tenant/user-${i}`, clientId: 'client', padding: 'x'.repeat(200) });
    await made.close();
    const file = await open(path, 'r+');
    await file.write(Buffer.alloc(16_384, 0xde), 0, 16_384, 4096);
    await file.close();
    const corruptConfig = join(dir, 'corrupt.yaml');
    await writeFile(corruptConfig, `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(path)}\n`);
    const io = captureIo(dir);
    const code = await runCli(['start', '--config', corruptConfig, '--port', '0', '--log-level', 'silent'], io, [startCommand]);
    assert.equal(code, 2, io.err.join(''));
    assert.match(io.err.join(''), new RegExp(`store unavailable: the SQLite store at ${path.replaceAll('.', '\\.')} is damaged \\(database disk image is malformed\\): restore it from a backup`));
    assert.deepEqual(io.out, []);
  });

  it('tells a damaged database file from a store that may come back (a lock held, a full disk): only the first refuses to start', () => {
    const sqliteError = (errcode: number) => Object.assign(new Error(`sqlite ${errcode}`), { errcode });
    const failing = (errcode: number) => new StoreUnavailableError('the SQLite store is unavailable', { cause: sqliteError(errcode) });
    for (const damaged of [11, 26, 11 | (1 << 8)]) assert.equal(isDamagedDatabase(failing(damaged)), true, String(damaged));
    for (const passing of [5, 6, 8, 10, 13, 14]) assert.equal(isDamagedDatabase(failing(passing)), false, String(passing));
    assert.equal(isDamagedDatabase(new StoreUnavailableError('Redis is unreachable')), false);
  });

  it('reports a broken config file with exit code 2 and starts nothing', async () => {
    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'server:\n  prot: 8080\n');
    const io = captureIo(dir);
    const code = await runCli(['start', '--config', broken], io, [startCommand]);
    assert.equal(code, 2);
    assert.match(io.err.join(''), /prot/);
    assert.deepEqual(io.out, []);
  });
});
