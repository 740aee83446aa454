import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { CliIo } from '../../src/cli/command.ts';
import { runCli } from '../../src/cli/main.ts';

/**
 * `config check`, `doctor` and `start` must agree: whatever `start` refuses, `config check` refuses too (so CI and a
 * rollout catch it), and every refusal is exit code 2 (systemd's `RestartPreventExitStatus=2` stops a restart loop
 * that cannot fix a configuration). One case per way a configuration can be refused after the schema accepted it.
 */
const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-refusals-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const notAKey = join(dir, 'not-a-key.pem');
writeFileSync(notAKey, 'this is not a PEM key\n');
const notAKeySet = join(dir, 'not-a-key-set.json');
writeFileSync(notAKeySet, '{"version":1}\n');

/** A production configuration `start` accepts; each case changes one thing. */
function baseConfig(name: string): Record<string, unknown> {
  return {
    mode: 'production',
    server: { publicUrl: 'https://gw.example.com', host: '127.0.0.1', port: 0 },
    store: { type: 'sqlite', sqlitePath: join(dir, `${name}.db`) },
    upstream: { type: 'oidc', issuer: 'https://idp.example.com', clientId: 'gw', clientAuth: { method: 'client_secret_post', clientSecret: 'not-used-here' } },
    routes: [{ path: '/mcp', backend: 'http://127.0.0.1:9/mcp' }],
  };
}

interface RefusalCase {
  name: string;
  change: (config: Record<string, unknown>) => void;
  /** What the one-line problem must say (the same for every command). */
  problem: RegExp;
}

const upstreamOf = (config: Record<string, unknown>) => config.upstream as Record<string, unknown>;

const cases: RefusalCase[] = [
  {
    name: 'an http public URL without dev.insecureCookies',
    change: (config) => Object.assign(config.server as object, { publicUrl: 'http://localhost:8080' }),
    problem: /server\.publicUrl: .*dev\.insecureCookies/,
  },
  {
    name: 'a federated credential with no token source (the init template without AZURE_FEDERATED_TOKEN_FILE)',
    change: (config) => Object.assign(upstreamOf(config), { clientAuth: { method: 'federated' } }),
    problem: /upstream\.clientAuth: .*tokenFile/,
  },
  {
    name: 'private_key_jwt with a missing key file',
    change: (config) => Object.assign(upstreamOf(config), { clientAuth: { method: 'private_key_jwt', privateKeyFile: join(dir, 'missing.pem') } }),
    problem: /upstream\.clientAuth\.privateKeyFile: .*does not exist/,
  },
  {
    name: 'private_key_jwt with a file that is not a private key',
    change: (config) => Object.assign(upstreamOf(config), { clientAuth: { method: 'private_key_jwt', privateKeyFile: notAKey } }),
    problem: /upstream\.clientAuth\.privateKeyFile: /,
  },
  {
    name: 'an Entra tenant id that is no tenant',
    change: (config) => Object.assign(config, { upstream: { type: 'entra', entra: { tenantId: 'not a tenant!' }, clientId: 'gw', clientAuth: { method: 'client_secret_post', clientSecret: 'x' } } }),
    problem: /upstream\.entra\.tenantId: /,
  },
  {
    name: 'an Entra authority over plain http',
    change: (config) =>
      Object.assign(config, {
        upstream: { type: 'entra', entra: { tenantId: 'contoso.example', authority: 'http://login.example.com' }, clientId: 'gw', clientAuth: { method: 'client_secret_post', clientSecret: 'x' } },
      }),
    problem: /upstream\.entra\.authority: /,
  },
  {
    name: 'a public URL with a path prefix (routes, metadata and the sign-in callback are served at the root)',
    change: (config) => Object.assign(config, { server: { ...(config.server as object), publicUrl: 'https://gw.example.com/gatehouse' } }),
    problem: /server\.publicUrl: must be the root of its host/,
  },
  {
    name: 'a keys.file that is not a key set',
    change: (config) => Object.assign(config, { keys: { source: 'file', file: notAKeySet } }),
    problem: /keys\.file: /,
  },
];

function writeConfig(name: string, change: RefusalCase['change']): string {
  const config = baseConfig(name);
  change(config);
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(config));
  return file;
}

async function inProcess(args: string[]): Promise<{ code: number; output: string }> {
  const output: string[] = [];
  const io: CliIo = { stdout: (text) => output.push(text), stderr: (text) => output.push(text), env: { PATH: process.env.PATH }, cwd: dir };
  const code = await runCli(args, io);
  return { code, output: output.join('') };
}

/** `start` in its own process, as systemd runs it; a start that does not refuse is killed and fails the case. */
function start(file: string): { code: number | null; output: string } {
  const result = spawnSync(process.execPath, [main, 'start', '--config', file], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: dir },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: result.status, output: result.stdout + result.stderr };
}

describe('config check, doctor and start refuse the same configurations', () => {
  it('accepts the base configuration everywhere (so each case below refuses for its own reason)', async () => {
    const file = writeConfig('base', () => {});
    const checked = await inProcess(['config', 'check', file]);
    assert.equal(checked.code, 0, checked.output);
  });

  cases.forEach(({ name, change, problem }, index) => {
    it(`refuses ${name}: exit 2 from config check and start, a failed config line from doctor`, async () => {
      const file = writeConfig(`case-${index}`, change);
      const checked = await inProcess(['config', 'check', file]);
      assert.equal(checked.code, 2, checked.output);
      assert.match(checked.output, problem);

      const doctor = await inProcess(['doctor', '--config', file]);
      assert.equal(doctor.code, 1, doctor.output);
      assert.match(doctor.output, /\[FAIL\] config/);
      assert.match(doctor.output, problem);

      const started = start(file);
      assert.equal(started.code, 2, started.output);
      assert.match(started.output, problem);
      assert.ok(!/^\s+at /m.test(started.output), `no stack trace:\n${started.output}`);
    });
  });
});
