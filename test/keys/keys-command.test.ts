import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CliUsageError, type CliCommand, type CliIo } from '../../src/cli/command.ts';
import { createKeysCommands, keysListCommand } from '../../src/cli/commands/keys.ts';
import { loadConfig } from '../../src/config/load.ts';
import { generateKeySet, parseKeySet, serializeKeySet } from '../../src/keys/key-set.ts';
import { createDoctorCommand } from '../../src/cli/commands/doctor.ts';
import type { GatehouseConfig } from '../../src/config/schema.ts';
import { KEY_SET_RECORD, KEYS_NAMESPACE } from '../../src/keys/key-set-source.ts';
import { keyRetention } from '../../src/keys/rotation.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { openStore } from '../../src/store/open-store.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { keyMaterial } from './helpers.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('gatehouse keys list|rotate|prune|revoke', () => {
  const clock = new ManualClock();
  const commands = createKeysCommands({ clock, openStore: (config) => openStore(config.store, { clock }) });
  let directory: string;
  let configFile: string;
  let database: string;

  const run = async (command: CliCommand, values: Record<string, string | boolean>, positionals: string[] = []): Promise<Run> => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text), env: {}, cwd: directory };
    const code = await command.run({ values, positionals, io });
    return { code, stdout, stderr };
  };

  /** Every secret in the stored key set, read straight from the database the commands used. */
  const storedMaterial = async (): Promise<string[]> => {
    const store = await createSqliteStore({ path: database, clock, purgeIntervalMs: 0 });
    try {
      return keyMaterial(parseKeySet(await store.get(KEYS_NAMESPACE, KEY_SET_RECORD)));
    } finally {
      await store.close();
    }
  };

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gatehouse-keys-cli-'));
    database = join(directory, 'gatehouse.db');
    configFile = join(directory, 'gatehouse.yaml');
    await writeFile(configFile, `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(database)}\n`);
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('says there are no keys yet on a fresh store, without creating any', async () => {
    const result = await run(commands.list, { config: configFile });
    assert.equal(result.code, 0);
    assert.match(result.stdout, /No keys yet/);
    const json = await run(commands.list, { config: configFile, json: true });
    assert.deepEqual(JSON.parse(json.stdout), { keys: [] });
  });

  it('rotates, printing the new key ids and a table without key material', async () => {
    await run(commands.rotate, { config: configFile });
    clock.advance(60_000);
    const result = await run(commands.rotate, { config: configFile, json: true });
    assert.equal(result.code, 0);
    const output = JSON.parse(result.stdout) as { signingKid: string; keys: { kid: string; status: string; use: string }[] };
    assert.equal(output.keys.length, 6);
    assert.equal(output.keys.find((key) => key.kid === output.signingKid)?.status, 'current');

    const table = await run(commands.list, { config: configFile });
    assert.match(table.stdout.split('\n')[0] ?? '', /^KID\s+USE\s+ALG\s+STATUS\s+CREATED$/);
    assert.equal(table.stdout.trim().split('\n').length, 1 + 6);
    assert.match(table.stdout, /retired since .*prunable after/);
    for (const secret of await storedMaterial()) {
      assert.ok(!table.stdout.includes(secret) && !result.stdout.includes(secret), 'output contains key material');
    }
  });

  it('prunes nothing before the window and the retired signing keys after it', async () => {
    // Nothing due: said, exit 0, without --yes and without a terminal (no question to ask).
    const early = await run(commands.prune, { config: configFile });
    assert.equal(early.code, 0, early.stderr);
    assert.match(early.stdout, /Nothing to prune\.\nThe next retired key becomes prunable at /);

    const { signingSeconds } = keyRetention(loadConfig({ file: configFile, env: {}, cwd: directory }).config);
    clock.advance(signingSeconds * 1000);
    // Something due, no terminal: refused until --yes says so.
    await assert.rejects(run(commands.prune, { config: configFile }), (error: unknown) => error instanceof CliUsageError && error.exitCode === 2);
    const result = await run(commands.prune, { config: configFile, json: true, yes: true });
    const output = JSON.parse(result.stdout) as { removed: { use: string }[]; kept: { use: string }[] };
    assert.deepEqual(output.removed.map((key) => key.use), ['sig', 'sig']);
    assert.equal(output.kept.length, 4);
  });

  it('turns a malformed key file into a one-line usage error (exit code 2)', async () => {
    const keysFile = join(directory, 'broken.keys.json');
    await writeFile(keysFile, '{"version": 1}');
    const fileConfig = join(directory, 'file-keys.yaml');
    await writeFile(fileConfig, `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(database)}\nkeys:\n  source: file\n  file: ${JSON.stringify(keysFile)}\n`);
    await assert.rejects(
      run(commands.rotate, { config: fileConfig }),
      (error: unknown) => error instanceof CliUsageError && error.exitCode === 2 && /broken\.keys\.json.*signingKeys/.test(error.message),
    );
  });

  it('reads and rotates a key file before the store exists (what `gatehouse init` writes), and doctor checks it', async () => {
    // `keys list` answered "store unavailable: there is no database" for the keys the file held, and doctor said they
    // were "created with the store": neither needs a store before the first start (there is no gateway to tell).
    const firstStart = join(directory, 'first-start');
    const keysFile = join(directory, 'init.keys.json');
    await writeFile(keysFile, serializeKeySet(generateKeySet({ signingAlgorithm: 'ES256', now: clock.now() })), { mode: 0o600 });
    const fileConfig = join(directory, 'init.yaml');
    const missingDatabase = join(firstStart, 'gatehouse.db');
    await writeFile(fileConfig, `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(missingDatabase)}\nkeys:\n  source: file\n  file: ${JSON.stringify(keysFile)}\n`);
    const asTheCliOpensIt = { clock, openStore: (config: GatehouseConfig) => openStore(config.store, { clock, mustExist: true }) };
    const cli = createKeysCommands(asTheCliOpensIt);
    const listed = await run(cli.list, { config: fileConfig });
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout.trim().split('\n').length, 1 + 2, listed.stdout);
    assert.equal(listed.stderr, '', 'nothing to tell: no gateway has started');
    const rotated = await run(cli.rotate, { config: fileConfig });
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal(parseKeySet(JSON.parse(await readFile(keysFile, 'utf8'))).signingKeys.length, 2);
    assert.equal(existsSync(missingDatabase), false, 'no store was made');

    let out = '';
    const io: CliIo = { stdout: (text) => (out += text), stderr: () => {}, env: {}, cwd: directory };
    const doctor = createDoctorCommand({ ...asTheCliOpensIt, fetch: async () => new Response('', { status: 503 }), reachBackend: async () => undefined });
    await doctor.run({ values: { config: fileConfig, json: true }, positionals: [], io });
    const keysCheck = (JSON.parse(out) as { checks: Array<{ name: string; status: string; detail: string }> }).checks.find((check) => check.name === 'keys');
    assert.equal(keysCheck?.status, 'ok', JSON.stringify(keysCheck));
  });

  it('works with the real clock and store wiring', async () => {
    const result = await run(keysListCommand, { config: configFile });
    assert.equal(result.code, 0);
    assert.equal(result.stdout.trim().split('\n').length, 1 + 4);
  });

  it('declares --config and --json on every command, and --yes on prune and revoke (they cannot be undone)', () => {
    for (const command of Object.values(commands)) {
      assert.equal(command.path[0], 'keys');
      const expected = command === commands.prune || command === commands.revoke ? ['config', 'json', 'yes'] : ['config', 'json'];
      assert.deepEqual(Object.keys(command.options ?? {}).toSorted(), expected);
    }
  });

  it('prune refuses without --yes off a terminal, and asks on one naming the keys it would remove', async () => {
    await run(commands.rotate, { config: configFile });
    clock.advance(keyRetention(loadConfig({ file: configFile, env: {}, cwd: directory }).config).signingSeconds * 1000);
    await assert.rejects(
      run(commands.prune, { config: configFile }),
      (error: unknown) => error instanceof CliUsageError && error.exitCode === 2 && /keys prune.*pass --yes/.test(error.message),
    );
    const asked: string[] = [];
    let stderr = '';
    const io: CliIo = { stdout: () => {}, stderr: (text) => (stderr += text), env: {}, cwd: directory, stdinIsTTY: true, ask: async (question) => (asked.push(question), 'no') };
    const code = await commands.prune.run({ values: { config: configFile }, positionals: [], io });
    assert.equal(code, 1);
    assert.match(asked[0] ?? '', /^Remove 1 retired key\(s\) for good: \S+ \(sig\)\? \[y\/N\] $/);
    assert.match(stderr, /Cancelled/);
    const listed = JSON.parse((await run(commands.list, { config: configFile, json: true })).stdout) as { keys: unknown[] };
    assert.equal(listed.keys.length, 6, 'nothing pruned after "no"');
  });

  it('revoke asks on a terminal naming what ends, and changes nothing on "no"', async () => {
    const keys = JSON.parse((await run(commands.list, { config: configFile, json: true })).stdout) as { keys: { kid: string; use: string; status: string }[] };
    const current = keys.keys.find((key) => key.use === 'sig' && key.status === 'current');
    assert.ok(current);
    const asked: string[] = [];
    let stderr = '';
    const io: CliIo = { stdout: () => {}, stderr: (text) => (stderr += text), env: {}, cwd: directory, stdinIsTTY: true, ask: async (question) => (asked.push(question), 'n') };
    const code = await commands.revoke.run({ values: { config: configFile }, positionals: [current.kid], io });
    assert.equal(code, 1);
    assert.equal(
      asked[0],
      `Revoke signing key ${current.kid} now? Every token it signed stops working at once (clients refresh or sign in again); a new current signing key replaces it. [y/N] `,
    );
    assert.match(stderr, /Cancelled/);
    const after = JSON.parse((await run(commands.list, { config: configFile, json: true })).stdout) as typeof keys;
    assert.deepEqual(after, keys);
  });

  it('revoke refuses without --yes off a terminal, and an unknown key id with exit code 1, before changing anything', async () => {
    await assert.rejects(
      run(commands.revoke, { config: configFile }, ['whatever']),
      (error: unknown) => error instanceof CliUsageError && error.exitCode === 2 && /keys revoke.*pass --yes/.test(error.message),
    );
    await assert.rejects(
      run(commands.revoke, { config: configFile, yes: true }, ['no-such-kid']),
      (error: unknown) => error instanceof Error && (error as { exitCode?: number }).exitCode === 1 && /no key has the id "no-such-kid"/.test(error.message),
    );
  });

  it('revokes a current key, printing the replacement and how a running gateway on SQLite drops it, without key material', async () => {
    const before = JSON.parse((await run(commands.list, { config: configFile, json: true })).stdout) as { keys: { kid: string; use: string; status: string }[] };
    const current = before.keys.find((key) => key.use === 'sig' && key.status === 'current');
    assert.ok(current);
    const result = await run(commands.revoke, { config: configFile, yes: true }, [current.kid]);
    assert.equal(result.code, 0);
    const [revoked, replaced, drop] = result.stdout.split('\n');
    assert.equal(revoked, `Revoked signing key ${current.kid}.`);
    assert.match(replaced ?? '', /^New current signing key: \S+\.$/);
    assert.match(drop ?? '', /SQLite file drops the key at its next reload: send it SIGHUP now/);
    const after = JSON.parse((await run(commands.list, { config: configFile, json: true })).stdout) as typeof before;
    assert.equal(after.keys.length, before.keys.length);
    assert.ok(!after.keys.some((key) => key.kid === current.kid));
    for (const secret of await storedMaterial()) assert.ok(!result.stdout.includes(secret), 'output contains key material');
  });
});

describe('gatehouse keys prune, answered late', () => {
  it('removes only the keys it named, not one that came due while the question waited', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'gatehouse-keys-late-'));
    const clock = new ManualClock();
    const commands = createKeysCommands({ clock, openStore: (config) => openStore(config.store, { clock }) });
    try {
      const configFile = join(directory, 'gatehouse.yaml');
      await writeFile(configFile, `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(join(directory, 'gatehouse.db'))}\n`);
      const io = (ask?: () => Promise<string>): CliIo => ({ stdout: () => {}, stderr: () => {}, env: {}, cwd: directory, ...(ask ? { stdinIsTTY: true, ask } : {}) });
      const run = (command: CliCommand, values: Record<string, string | boolean>, ask?: () => Promise<string>) => command.run({ values: { config: configFile, ...values }, positionals: [], io: io(ask) });
      // Three rotations a minute apart: the first two sets retire a minute apart.
      await run(commands.rotate, {});
      clock.advance(60_000);
      await run(commands.rotate, {});
      clock.advance(60_000);
      await run(commands.rotate, {});
      const { signingSeconds } = keyRetention(loadConfig({ file: configFile, env: {}, cwd: directory }).config);
      // The first retired signing key is due; the second comes due while the operator reads the question.
      clock.advance(signingSeconds * 1000 - 60_000);
      let said = '';
      const code = await commands.prune.run({
        values: { config: configFile },
        positionals: [],
        io: {
          ...io(async () => {
            clock.advance(120_000);
            return 'yes';
          }),
          stdout: (text) => (said += text),
        },
      });
      assert.equal(code, 0);
      assert.match(said, /A retired key came due while this ran \(it was not named\): run it again to remove it\./);
      let listed = '';
      await commands.list.run({ values: { config: configFile, json: true }, positionals: [], io: { ...io(), stdout: (text) => (listed += text) } });
      const signing = (JSON.parse(listed) as { keys: { use: string }[] }).keys.filter((key) => key.use === 'sig');
      assert.equal(signing.length, 2, 'the current key and the one that was not named');
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
