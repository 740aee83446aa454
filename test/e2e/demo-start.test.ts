import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../support/demo-harness.ts';

/**
 * `npm start` as a newcomer runs it: the real CLI in its own process, no config file, in an empty directory. It must
 * start every demo component, print what to do next, keep its SQLite store in ./.gatehouse/, move with --port or
 * GATEHOUSE_PORT, refuse a taken port in one line (exit 2), and stop everything on SIGTERM (exit 0).
 */
const main = resolve(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

interface Started {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
}

function startCli(args: string[], options: { cwd: string; env: Record<string, string> }): Started {
  // A newcomer's environment: none of the runner's GATEHOUSE_* variables (they would be reported as unknown settings).
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('GATEHOUSE_')));
  const child = spawn(process.execPath, [main, ...args], { cwd: options.cwd, env: { ...inherited, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { child, stdout, stderr, exited };
}

/** Resolves once the banner's last line is printed, or rejects with what the process said if it exits first. */
async function bannerOf(started: Started): Promise<string> {
  for (;;) {
    const text = started.stdout.join('');
    if (text.includes('Stop with Ctrl-C.')) return text;
    if (started.child.exitCode !== null) throw new Error(`exited ${started.child.exitCode}: ${started.stderr.join('')}${text}`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

const refusesConnections = (port: number): Promise<boolean> =>
  new Promise((done) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      done(false);
    });
    socket.once('error', () => done(true));
  });

async function demoPorts(): Promise<Record<string, string>> {
  return {
    GATEHOUSE_DEMO_IDP_PORT: String(await freePort()),
    GATEHOUSE_DEMO_GRAPH_PORT: String(await freePort()),
    GATEHOUSE_DEMO_DIRECTORY_PORT: String(await freePort()),
  };
}

describe('npm start (gatehouse start without a config file)', () => {
  let cwd: string;
  const running: ChildProcess[] = [];
  before(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'gatehouse-e2e-start-'));
  });
  after(async () => {
    for (const child of running) if (child.exitCode === null) child.kill('SIGKILL');
    await rm(cwd, { recursive: true, force: true });
  });

  it('starts the demo, prints how to connect, serves it, and stops everything on SIGTERM', async () => {
    const port = await freePort();
    const env = await demoPorts();
    const started = startCli(['start', '--port', String(port), '--log-level', 'warn'], { cwd, env });
    running.push(started.child);
    const banner = await bannerOf(started);
    const mcpUrl = `http://localhost:${port}/mcp`;
    assert.match(banner, new RegExp(`MCP server URL.*${mcpUrl.replace(/[/.]/g, '\\$&')}`));
    assert.match(banner, /adele\s+password \S{8,}/);
    assert.match(banner, /alex\s+password \S{8,}/);
    assert.ok(banner.includes(`http://localhost:${port}/account`));
    assert.ok(banner.includes(`http://localhost:${port}/admin`));
    const snippet = banner.split('\n').find((line) => line.includes('"servers"'));
    assert.deepEqual(JSON.parse(snippet ?? '{}'), { servers: { 'gatehouse-mcp': { type: 'http', url: mcpUrl } } });
    assert.match(banner, /npx @modelcontextprotocol\/inspector/);
    assert.match(banner, /DEVELOPMENT ONLY/);
    // The older transport's URL, served: a client of HTTP+SSE finds it on the banner, not only in the docs.
    assert.ok(banner.includes(`${mcpUrl}/sse`), 'the HTTP+SSE URL is printed');
    const legacy = await fetch(`${mcpUrl}/sse`);
    assert.equal(legacy.status, 401, 'and served (it asks for a token)');
    await legacy.body?.cancel();
    assert.doesNotMatch(banner, / +$/m, 'no line ends in spaces');

    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ok', checks: { store: 'ok', upstream: 'ok' } });
    const challenge = await fetch(mcpUrl, { method: 'POST' });
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers.get('www-authenticate') ?? '', /resource_metadata="http:\/\/localhost:\d+\/\.well-known\/oauth-protected-resource\/mcp"/);
    assert.ok(existsSync(join(cwd, '.gatehouse', 'gatehouse.db')), 'the SQLite store is in ./.gatehouse/');

    started.child.kill('SIGTERM');
    assert.equal(await started.exited, 0);
    for (const component of [String(port), ...Object.values(env)]) assert.ok(await refusesConnections(Number(component)), `port ${component} was released`);
  });

  it('stops on a SIGTERM to `npm start` itself, as a service manager or a terminal tab sends it', async () => {
    // npm runs the script through `sh -c`, which does not pass signals on: npm forwarded the SIGTERM to the shell,
    // both exited, and the gateway went on serving on every port, re-parented to init. The script `exec`s node.
    const port = await freePort();
    const env = { ...(await demoPorts()), GATEHOUSE_SQLITE_PATH: join(cwd, 'npm-start.db') };
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('GATEHOUSE_') && !name.startsWith('npm_')));
    const npm = spawn('npm', ['start', '--silent', '--', '--port', String(port), '--log-level', 'warn'], {
      cwd: resolve(import.meta.dirname, '..', '..'),
      env: { ...inherited, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.push(npm);
    const stdout: string[] = [];
    const stderr: string[] = [];
    npm.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk.toString()));
    npm.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
    const exited = new Promise<number | null>((done) => npm.once('exit', (code) => done(code)));
    await bannerOf({ child: npm, stdout, stderr, exited });
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
    npm.kill('SIGTERM');
    await exited;
    // The gateway and every stand-in let go of their ports (polled: npm may exit a moment before its child).
    for (const component of [port, ...Object.values(env).filter((value) => /^\d+$/.test(value)).map(Number)]) {
      let released = await refusesConnections(component);
      for (let tries = 0; !released && tries < 200; tries++) {
        await new Promise((done) => setTimeout(done, 50));
        released = await refusesConnections(component);
      }
      assert.ok(released, `port ${component} was released`);
    }
  });

  it('GATEHOUSE_PORT moves the gateway and its public URL', async () => {
    const port = await freePort();
    const started = startCli(['start', '--log-level', 'warn'], { cwd, env: { ...(await demoPorts()), GATEHOUSE_PORT: String(port) } });
    running.push(started.child);
    const banner = await bannerOf(started);
    assert.ok(banner.includes(`http://localhost:${port}/mcp`));
    const metadata = (await (await fetch(`http://127.0.0.1:${port}/.well-known/oauth-authorization-server`)).json()) as { issuer: string };
    assert.equal(metadata.issuer, `http://localhost:${port}`);
    started.child.kill('SIGTERM');
    assert.equal(await started.exited, 0);
  });

  for (const taken of ['gateway', 'identity provider'] as const) {
    it(`a taken ${taken} port is one line on stderr and exit code 2`, async () => {
      const blocker: Server = createServer();
      const port = await freePort();
      await new Promise<void>((done) => blocker.listen(port, '127.0.0.1', done));
      try {
        const env = await demoPorts();
        const gatewayPort = taken === 'gateway' ? port : await freePort();
        if (taken === 'identity provider') env.GATEHOUSE_DEMO_IDP_PORT = String(port);
        const started = startCli(['start', '--port', String(gatewayPort), '--log-level', 'silent'], { cwd, env });
        running.push(started.child);
        assert.equal(await started.exited, 2);
        const lines = started.stderr.join('').trim().split('\n');
        assert.equal(lines.length, 1, lines.join('\n'));
        assert.match(lines[0] ?? '', new RegExp(`port ${port}.*in use`));
      } finally {
        await new Promise((done) => blocker.close(done));
      }
    });
  }
});
