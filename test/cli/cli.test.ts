import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CliUsageError, type CliCommand, type CliIo } from '../../src/cli/command.ts';
import { commands } from '../../src/cli/commands/index.ts';
import { runCli } from '../../src/cli/main.ts';
import { accountRecord } from '../../src/records/account.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { writeRecord } from '../../src/store/record-access.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { generateKeySet, newKeyId, serializeKeySet } from '../../src/keys/key-set.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the real CLI in a child process with Node 24 and a clean environment. */
export function gatehouse(args: string[], env: NodeJS.ProcessEnv = {}, entry = 'src/cli/main.ts') {
  const result = spawnSync(process.execPath, [join(root, entry), ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: dir, ...env },
    encoding: 'utf8',
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function assertNoStackTrace(text: string): void {
  assert.ok(!/^\s+at /m.test(text), `no stack trace expected:\n${text}`);
}

describe('gatehouse --help', () => {
  it('lists every command', () => {
    const { code, stdout } = gatehouse(['--help']);
    assert.equal(code, 0);
    for (const command of commands) assert.ok(stdout.includes(command.path.join(' ')), command.path.join(' '));
  });

  for (const command of commands) {
    it(`prints usage, summary and options for "${command.path.join(' ')}"`, () => {
      const { code, stdout } = gatehouse([...command.path, '--help']);
      assert.equal(code, 0);
      assert.ok(stdout.startsWith(`Usage: gatehouse ${command.path.join(' ')}`), stdout);
      assert.ok(stdout.includes(command.summary));
      for (const option of Object.keys(command.options ?? {})) assert.ok(stdout.includes(`--${option}`), option);
    });
  }

  it('works through bin/gatehouse.js too', () => {
    const { code, stdout } = gatehouse(['--help'], {}, 'bin/gatehouse.js');
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: gatehouse <command>/);
  });
});

describe('gatehouse --version', () => {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  for (const [flag, entry] of [['--version', 'src/cli/main.ts'], ['-v', 'src/cli/main.ts'], ['--version', 'bin/gatehouse.js']] as const) {
    it(`${flag} through ${entry} prints the package version, exit 0`, () => {
      const { code, stdout } = gatehouse([flag], {}, entry);
      assert.equal(code, 0);
      assert.equal(stdout, `gatehouse ${version}\n`);
    });
  }
});

describe('gatehouse usage errors', () => {
  it('suggests the nearest command for an unknown one, exit 2', () => {
    const { code, stderr } = gatehouse(['conifg', 'check']);
    assert.equal(code, 2);
    assert.equal(stderr.trim().split('\n').length, 1);
    assert.match(stderr, /^gatehouse: unknown command "conifg" — did you mean "gatehouse config( check)?"\?/);
  });

  it('names the group and its subcommands for an unknown subcommand of a known one, exit 2', () => {
    const typo = gatehouse(['keys', 'rotat']);
    assert.equal(typo.code, 2);
    assert.equal(typo.stderr, 'gatehouse: unknown subcommand "rotat" of "gatehouse keys" (it has list, rotate, prune, revoke) — did you mean "gatehouse keys rotate"?\n');
    assert.equal(gatehouse(['keys', 'frob']).stderr, 'gatehouse: unknown subcommand "frob" of "gatehouse keys" (it has list, rotate, prune, revoke)\n');
  });

  it('suggests the nearest option for an unknown one, exit 2', () => {
    const { code, stderr } = gatehouse(['init', '--frce']);
    assert.equal(code, 2);
    assert.equal(stderr, 'gatehouse: unknown option "--frce" for "gatehouse init" — did you mean "--force"?\n');
  });

  it('says how to pass an argument that starts with "-" (a key id made before ids avoided it), and "--" does so', async () => {
    const { code, stderr } = gatehouse(['keys', 'revoke', '-Wb_nLmXUuyh50Df', '--yes']);
    assert.equal(code, 2);
    assert.equal(stderr, 'gatehouse: unknown option "-W" for "gatehouse keys revoke" — for an argument that starts with "-", put "--" before it, after the options: gatehouse keys revoke [options] -- -Wb_nLmXUuyh50Df\n');
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-dash-'));
    try {
      const keysFile = join(dir, 'keys.json');
      const configFile = join(dir, 'gatehouse.yaml');
      writeFileSync(keysFile, serializeKeySet(generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' })), { mode: 0o600 });
      writeFileSync(configFile, `mode: demo\nstore:\n  sqlitePath: ${join(dir, 'g.db')}\nkeys:\n  source: file\n  file: ${keysFile}\n`);
      await (await createSqliteStore({ path: join(dir, 'g.db'), clock: systemClock, purgeIntervalMs: 0 })).close();
      const passed = gatehouse(['keys', 'revoke', '--yes', '--config', configFile, '--', '-Wb_nLmXUuyh50Df']);
      // Read as the key id: not in the set (exit 1), not an option (exit 2).
      assert.equal(passed.code, 1, passed.stderr);
      assert.match(passed.stderr, /-Wb_nLmXUuyh50Df/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('makes key ids that never start with "-" (one in 64 did, and read as an option on the command line)', () => {
    const tokens = ['-Wb_nLmXUuyh50Df', 'Ab_nLmXUuyh50Df-'];
    const random = { token: () => tokens.shift() ?? 'x', uuid: () => 'u', bytes: () => Buffer.alloc(0) };
    assert.equal(newKeyId(random as never), 'kWb_nLmXUuyh50Df');
    assert.equal(newKeyId(random as never), 'Ab_nLmXUuyh50Df-');
  });

  it('refuses an option as the value of another (a forgotten value), exit 2', () => {
    // `--user --config f` took "--config" as the user and then read the demo store.
    const { code, stderr } = gatehouse(['grants', 'list', '--user', '--config', 'gatehouse.yaml']);
    assert.equal(code, 2);
    assert.equal(stderr, 'gatehouse: option "--user" needs a value, not the option "--config" (write --user=--config if that is the value)\n');
  });

  it('reports a missing argument, exit 2', () => {
    const { code, stderr } = gatehouse(['config', 'check']);
    assert.equal(code, 2);
    assert.match(stderr, /^gatehouse: missing FILE — usage: gatehouse config check FILE \[options\]\n$/);
  });
});

describe('gatehouse config check', () => {
  const valid = join(dir, 'valid.yaml');
  writeFileSync(
    valid,
    'server:\n  publicUrl: https://gw.example.com\nupstream:\n  issuer: https://idp.example.com\n  clientId: gw\n  clientAuth: { method: federated, tokenFile: /var/run/secrets/azure/tokens/azure-identity-token }\nroutes:\n  - { path: /mcp, backend: "http://127.0.0.1:3000/mcp" }\n',
  );

  it('prints ok and a one-line summary for a valid file', () => {
    const { code, stdout, stderr } = gatehouse(['config', 'check', valid]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.split('\n').filter(Boolean).length, 1);
    assert.match(stdout, /^ok: mode production, issuer https:\/\/gw\.example\.com, store sqlite, .*1 route \(\/mcp\)\n$/);
  });

  it('prints one line per problem and exits 2, without a stack trace or secret', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'servr: {}\nserver:\n  port: abc\nupstream:\n  clientId: gw\n  clientAuth: { method: client_secret_post, clientSecret: [t0p-s3cret] }\n');
    const { code, stdout, stderr } = gatehouse(['config', 'check', bad]);
    assert.equal(code, 2);
    assert.equal(stdout, '');
    const lines = stderr.trim().split('\n');
    assert.match(lines[0] ?? '', /^gatehouse: .*bad\.yaml: invalid configuration \(3 problems\):$/);
    assert.deepEqual(lines.slice(1).map((line) => line.trim()).sort(), [
      'server.port: expected a number, got "abc"',
      'servr: unknown key — did you mean "server"?',
      'upstream.clientAuth.clientSecret: expected a string, got a list',
    ]);
    assert.ok(!stderr.includes('t0p-s3cret'));
    assertNoStackTrace(stderr);
  });

  it('escapes control characters of the file in what it prints, and refuses credentials in an issuer or public URL', () => {
    // An unknown key is quoted as written: an escape sequence in it drove the terminal; a password in the issuer URL
    // was printed in the start-up warning.
    const hostile = join(dir, 'hostile.yaml');
    writeFileSync(
      hostile,
      'server:\n  publicUrl: https://admin:pa55w0rd@gw.example.com\n"\\e[31mred\\e[0m": 1\nupstream:\n  issuer: https://user:s3cr3t@idp.example.com\n  clientId: gw\n  clientAuth: { method: federated }\nroutes:\n  - { path: /mcp, backend: "http://127.0.0.1:3000/mcp" }\n',
    );
    const { code, stderr } = gatehouse(['config', 'check', hostile]);
    assert.equal(code, 2);
    assert.ok(!stderr.includes('\u001b'), 'no raw escape character reaches the terminal');
    assert.match(stderr, /\\x1b\[31mred/);
    assert.match(stderr, /server\.publicUrl: a URL here names no user or password/);
    assert.match(stderr, /upstream\.issuer: a URL here names no user or password/);
  });

  it('reports malformed YAML with its position, exit 2', () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'server:\n  port: [8080\n');
    const { code, stderr } = gatehouse(['config', 'check', broken]);
    assert.equal(code, 2);
    assert.match(stderr, /\n {2}line \d+, column \d+: .*\(YAML syntax\)\n$/);
    assertNoStackTrace(stderr);
  });

  it('--json: ok, the summary and the warnings as one JSON document, exit 0', () => {
    const { code, stdout, stderr } = gatehouse(['config', 'check', valid, '--json']);
    assert.equal(code, 0, stderr);
    const result = JSON.parse(stdout) as { ok: boolean; summary: string; warnings: string[] };
    assert.equal(result.ok, true);
    assert.match(result.summary, /^mode production, issuer https:\/\/gw\.example\.com, .*1 route \(\/mcp\)$/);
    assert.ok(Array.isArray(result.warnings));
  });

  it('--json: every problem in the document, exit 2, nothing on stderr, no secret', () => {
    const bad = join(dir, 'bad-json.yaml');
    writeFileSync(bad, 'servr: {}\nupstream:\n  clientId: gw\n  clientAuth: { method: client_secret_post, clientSecret: [t0p-s3cret] }\n');
    const { code, stdout, stderr } = gatehouse(['config', 'check', bad, '--json']);
    assert.equal(code, 2);
    assert.equal(stderr, '');
    const result = JSON.parse(stdout) as { ok: boolean; file: string; problems: string[] };
    assert.equal(result.ok, false);
    assert.match(result.file, /bad-json\.yaml$/);
    assert.deepEqual(result.problems.toSorted(), [
      'servr: unknown key — did you mean "server"?',
      'upstream.clientAuth.clientSecret: expected a string, got a list',
    ]);
    assert.ok(!stdout.includes('t0p-s3cret'));
  });

  it('--json: the same problems as the text output for malformed YAML and for overrides', () => {
    const broken = join(dir, 'broken-json.yaml');
    writeFileSync(broken, 'server:\n  port: [8080\n');
    for (const [file, env] of [[broken, {}], [valid, { GATEHOUSE_PORT: 'eighty' }]] as const) {
      const text = gatehouse(['config', 'check', file], env);
      const json = gatehouse(['config', 'check', file, '--json'], env);
      assert.equal(json.code, text.code);
      const problems = (JSON.parse(json.stdout) as { problems: string[] }).problems;
      assert.deepEqual(problems, text.stderr.trim().split('\n').slice(1).map((line) => line.trim()));
    }
  });

  it('applies GATEHOUSE_* overrides and names them in problems', () => {
    const { code, stderr } = gatehouse(['config', 'check', valid], { GATEHOUSE_PORT: 'eighty' });
    assert.equal(code, 2);
    assert.match(stderr, /server\.port \(from GATEHOUSE_PORT\): expected a number, got "eighty"/);
  });
});

describe('runCli error mapping', () => {
  const captured = () => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { stdout: (text) => out.push(text), stderr: (text) => err.push(text), env: {}, cwd: dir };
    return { io, out, err };
  };
  const failing = (error: unknown): CliCommand => ({
    path: ['explode'],
    summary: 'Fails.',
    run: async () => {
      throw error;
    },
  });

  it('prints one line and exits 1 for an unexpected error', async () => {
    const { io, err } = captured();
    const error = new Error('backend unreachable\nsecond line');
    assert.equal(await runCli(['explode'], io, [failing(error)]), 1);
    assert.deepEqual(err, ['gatehouse: backend unreachable\n']);
  });

  it('exits 2 for a usage error and for errors that carry exitCode 2', async () => {
    const { io, err } = captured();
    assert.equal(await runCli(['explode'], io, [failing(new CliUsageError('port 8080 is in use'))]), 2);
    assert.equal(await runCli(['explode'], io, [failing(Object.assign(new Error('taken'), { exitCode: 2 }))]), 2);
    assert.deepEqual(err, ['gatehouse: port 8080 is in use\n', 'gatehouse: taken\n']);
  });

  it('prints the stack only with GATEHOUSE_DEBUG=1', async () => {
    const { io, err } = captured();
    io.env = { GATEHOUSE_DEBUG: '1' };
    assert.equal(await runCli(['explode'], io, [failing(new Error('boom'))]), 1);
    assert.match(err.join(''), /^gatehouse: boom\nError: boom\n\s+at /);
  });

  it('passes parsed options and positionals to the command', async () => {
    const { io } = captured();
    let seen: unknown;
    const command: CliCommand = {
      path: ['a', 'b'],
      summary: 'Records.',
      positionals: ['FILE'],
      options: { flag: { type: 'boolean', description: 'x' }, name: { type: 'string', short: 'n', description: 'y' } },
      run: async (input) => {
        seen = { values: input.values, positionals: input.positionals };
        return 0;
      },
    };
    assert.equal(await runCli(['a', 'b', 'f.yaml', '--flag', '-n', 'v'], io, [command]), 0);
    assert.deepEqual(seen, { values: { flag: true, name: 'v' }, positionals: ['f.yaml'] });
  });
});

describe('a reader that stops reading', () => {
  it('ends the command quietly (no EPIPE stack trace, exit 0), as `gatehouse users list | head` expects', async () => {
    // ≈ 3,000 users: a listing far larger than a pipe's buffer, so writes go on after the reader has gone.
    const database = join(dir, 'epipe.db');
    const store = await createSqliteStore({ path: database, clock: systemClock, purgeIntervalMs: 0 });
    const now = Date.now();
    for (let i = 0; i < 3000; i++) {
      await writeRecord(store, accountRecord, `tenant/user-${i}`, { subject: `tenant/user-${i}`, issuer: 'https://idp.test', name: `User ${i}`, email: `user-${i}@example.test`, groups: [], firstSeenAt: now, lastSeenAt: now });
    }
    await store.close();
    const config = join(dir, 'epipe.yaml');
    writeFileSync(config, `mode: demo\nstore:\n  sqlitePath: ${JSON.stringify(database)}\n`);
    const child = spawn(process.execPath, [join(root, 'src/cli/main.ts'), 'users', 'list', '--config', config], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // Read one chunk, then close the pipe, as `head -c` does.
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
    assertNoStackTrace(stderr);
    assert.doesNotMatch(stderr, /EPIPE/);
    assert.equal(code, 0, stderr);
  });
});

