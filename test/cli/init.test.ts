import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseKeySet } from '../../src/keys/key-set.ts';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-init-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function gatehouse(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [main, ...args], { cwd: dir, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('gatehouse init', () => {
  it('writes a commented config and a private key set that config check accepts once its ${ENV}s are set', () => {
    const written = gatehouse(['init', '--out', 'gw.yaml']);
    assert.equal(written.code, 0, written.stderr);
    const config = readFileSync(join(dir, 'gw.yaml'), 'utf8');
    assert.match(config, /^# /);
    assert.match(config, /\$\{ENTRA_CLIENT_ID\}/);
    assert.ok(config.split('\n').filter((line) => line.trim().startsWith('#')).length > 20, 'the template is commented');
    const keyFile = join(dir, 'gw.keys.json');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const keySet = parseKeySet(readFileSync(keyFile, 'utf8'));
    assert.equal(keySet.signingKeys[0]?.alg, 'ES256');

    const unset = gatehouse(['config', 'check', 'gw.yaml']);
    assert.equal(unset.code, 2);
    assert.match(unset.stderr, /environment variable ENTRA_TENANT_ID is not set/);

    // The template's federated credential needs a token source, as `start` does (test/cli/start-refusals.test.ts).
    const noTokenSource = gatehouse(['config', 'check', 'gw.yaml'], { ENTRA_TENANT_ID: 'contoso-tenant', ENTRA_CLIENT_ID: 'app-id' });
    assert.equal(noTokenSource.code, 2);
    assert.match(noTokenSource.stderr, /upstream\.clientAuth: method federated needs a token source/);

    const checked = gatehouse(['config', 'check', 'gw.yaml'], {
      ENTRA_TENANT_ID: 'contoso-tenant',
      ENTRA_CLIENT_ID: 'app-id',
      AZURE_FEDERATED_TOKEN_FILE: '/var/run/secrets/azure/tokens/azure-identity-token',
    });
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stdout, /^ok: mode production, .*keys from file, upstream entra \(tenant contoso-tenant\), 1 route \(\/mcp\)\n$/);
  });

  it('refuses to overwrite without --force, and replaces the keys with it', () => {
    const before = readFileSync(join(dir, 'gw.keys.json'), 'utf8');
    const refused = gatehouse(['init', '--out', 'gw.yaml']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /already exists — pass --force/);
    assert.equal(readFileSync(join(dir, 'gw.keys.json'), 'utf8'), before);

    const forced = gatehouse(['init', '--out', 'gw.yaml', '--force', '--algorithm', 'EdDSA']);
    assert.equal(forced.code, 0, forced.stderr);
    const after = readFileSync(join(dir, 'gw.keys.json'), 'utf8');
    assert.notEqual(after, before);
    assert.equal(parseKeySet(after).signingKeys[0]?.alg, 'EdDSA');
    assert.equal(statSync(join(dir, 'gw.keys.json')).mode & 0o777, 0o600);
  });

  it('rejects an unknown algorithm and a missing directory with exit 2', () => {
    assert.equal(gatehouse(['init', '--out', 'x.yaml', '--algorithm', 'RS256']).code, 2);
    const missing = gatehouse(['init', '--out', 'no/such/dir/x.yaml']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /directory does not exist/);
  });
});
