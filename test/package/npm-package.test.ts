import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../support/demo-harness.ts';

/**
 * The published package as a user gets it: `npm pack` here, then in an empty directory that knows nothing of this
 * repository (no path to it, none of its node_modules on PATH, none of npm's or Gatehouse's variables from this run)
 * `npm install ./gatehouse-<version>.tgz`, `gatehouse --version` and `npx gatehouse start` serving the demo.
 * Installing needs the npm registry for the dependencies: the whole describe skips, saying so, when it cannot be
 * reached, and fails on anything else.
 */
const repoRoot = resolve(import.meta.dirname, '..', '..');
const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
const installTimeoutMs = 240_000;

/** The environment of a user's shell: this run's PATH minus anything inside the repository, and no npm_/GATEHOUSE_ variables. */
function userEnv(home: string): NodeJS.ProcessEnv {
  const inherited = Object.entries(process.env).filter(([name]) => !/^(npm_|GATEHOUSE_|INIT_CWD$|NODE_)/i.test(name));
  const path = (process.env.PATH ?? '').split(delimiter).filter((entry) => entry !== '' && !resolve(entry).startsWith(repoRoot));
  // The user's npm cache (already filled by this repository's own install) keeps the install from downloading everything again.
  const cache = process.env.npm_config_cache ?? join(process.env.HOME ?? home, '.npm');
  return { ...Object.fromEntries(inherited), PATH: path.join(delimiter), HOME: home, npm_config_cache: cache, npm_config_update_notifier: 'false' };
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout = installTimeoutMs): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout });
}

const work = mkdtempSync(join(tmpdir(), 'gatehouse-package-'));
const project = join(work, 'user-project');
const home = join(work, 'home');
const env = userEnv(home);
const skip =
  run('npm', ['ping'], tmpdir(), env, 30_000).status === 0
    ? false
    : 'the npm registry is unreachable (npm ping failed), so the tarball cannot install its dependencies';

describe('the npm package (npm pack, install in an empty directory, run)', { skip }, () => {
  after(() => rmSync(work, { recursive: true, force: true }));

  before(() => {
    // npm pack runs prepack (scripts/build-package.ts), so the tarball always holds freshly compiled JavaScript.
    const packed = run('npm', ['pack', '--pack-destination', work, '--json'], repoRoot, { ...process.env, npm_config_update_notifier: 'false' });
    assert.equal(packed.status, 0, `npm pack failed:\n${packed.stderr}`);
    const [tarball] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string }[];
    assert.equal(tarball?.filename, `gatehouse-${version}.tgz`);
    mkdirSync(project);
    mkdirSync(home);
    copyFileSync(join(work, tarball.filename), join(project, tarball.filename));
    const installed = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${tarball.filename}`], project, env);
    assert.equal(installed.status, 0, `npm install of the tarball failed (${installed.error?.message ?? `exit ${installed.status}`}):\n${installed.stderr}`);
  }, { timeout: installTimeoutMs + 60_000 });

  it('holds compiled JavaScript and no TypeScript sources (Node does not strip types under node_modules)', () => {
    const installed = join(project, 'node_modules', 'gatehouse');
    assert.ok(existsSync(join(installed, 'dist', 'src', 'cli', 'main.js')));
    assert.ok(existsSync(join(installed, 'dist', 'src', 'web', 'gatehouse.css')), 'runtime assets are shipped');
    assert.ok(!existsSync(join(installed, 'src')), 'the sources stay out of the package');
    const sources = readdirSync(installed, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'));
    assert.deepEqual(sources, []);
  });

  it('gatehouse --version prints the package version, from the installed bin on the PATH of a user shell', () => {
    const result = run(join(project, 'node_modules', '.bin', 'gatehouse'), ['--version'], project, env, 60_000);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `gatehouse ${version}\n`);
  });

  it('npx gatehouse start serves the demo and stops on SIGTERM', { timeout: 180_000 }, async () => {
    /** Starts the demo on free ports; undefined when one was taken in the seconds npx needs to start (tried again). */
    const start = async () => {
      const port = await freePort();
      const ports = { GATEHOUSE_DEMO_IDP_PORT: await freePort(), GATEHOUSE_DEMO_GRAPH_PORT: await freePort(), GATEHOUSE_DEMO_DIRECTORY_PORT: await freePort() };
      // Its own process group, so SIGTERM reaches gatehouse whether or not npx forwards it.
      const child = spawn('npx', ['gatehouse', 'start', '--port', String(port), '--log-level', 'warn'], {
        cwd: project,
        env: { ...env, ...Object.fromEntries(Object.entries(ports).map(([name, value]) => [name, String(value)])) },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const exited = new Promise<void>((done) => child.once('exit', () => done()));
      const started = { child, exited, port, output: '' };
      child.stdout.on('data', (chunk: Buffer) => (started.output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (started.output += chunk.toString()));
      while (!started.output.includes('Stop with Ctrl-C.') && child.exitCode === null) await new Promise((done) => setTimeout(done, 100));
      if (child.exitCode !== null && / is in use /.test(started.output)) return undefined;
      return started;
    };
    let started: Awaited<ReturnType<typeof start>>;
    for (let attempt = 0; attempt < 3 && started === undefined; attempt++) started = await start();
    assert.ok(started, 'the demo started on free ports in three tries');
    const { child, exited, port } = started;
    const output = started.output;
    try {
      assert.equal(child.exitCode, null, `npx gatehouse start exited early:\n${output}`);
      assert.match(output, new RegExp(`MCP server URL.*http://localhost:${port}/mcp`));
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(ready.status, 200);
      const metadata = (await (await fetch(`http://127.0.0.1:${port}/.well-known/oauth-authorization-server`)).json()) as { issuer: string };
      assert.equal(metadata.issuer, `http://localhost:${port}`);
      const challenge = await fetch(`http://127.0.0.1:${port}/mcp`, { method: 'POST' });
      assert.equal(challenge.status, 401);
      assert.match(challenge.headers.get('www-authenticate') ?? '', /resource_metadata=/);
      const page = await fetch(`http://127.0.0.1:${port}/account`, { redirect: 'manual' });
      assert.ok(page.status < 500, `the pages (with their shipped stylesheet) load: ${page.status}`);
    } finally {
      if (child.exitCode === null && child.pid) process.kill(-child.pid, 'SIGTERM');
      const forced = setTimeout(() => child.pid && process.kill(-child.pid, 'SIGKILL'), 15_000);
      await exited;
      clearTimeout(forced);
    }
    assert.ok(existsSync(join(project, '.gatehouse', 'gatehouse.db')), 'the demo keeps its store in the working directory');
  });
});
