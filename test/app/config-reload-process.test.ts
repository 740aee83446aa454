import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { generateKeySet, serializeKeySet } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import { followStream, mcpPost, mintAccessToken, toolsCall } from '../proxy/harness.ts';
import { freePort } from '../support/ports.ts';

/**
 * Reload without restart on a real process: `gatehouse start --config FILE`, the file edited, SIGHUP sent. A tool
 * policy added to the file must take effect on the running process; a broken file must be refused with the messages
 * `config check` prints, and the configuration that was running must keep serving.
 */
const cliMain = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

describe('SIGHUP reloads the configuration file of a running gateway', () => {
  let dir: string;
  let configFile: string;
  let backend: Server;
  let child: ChildProcess;
  let output = '';
  let gatewayUrl: string;
  let token: string;
  let config: Record<string, unknown>;
  const keySet = generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' });

  /** Resolves once the process has printed a log line matching `pattern` after `from` characters of output. */
  const waitForOutput = (pattern: RegExp, from: number) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const match = output.slice(from).match(pattern);
        if (match) {
          child.stdout?.off('data', check);
          resolve(match[0]);
        }
      };
      child.once('exit', () => reject(new Error(`gateway exited:\n${output}`)));
      child.stdout?.on('data', check);
      check();
    });

  const route = (tools: Record<string, unknown>) => ({
    path: '/mcp',
    backend: `http://127.0.0.1:${(backend.address() as { port: number }).port}/mcp`,
    transports: ['streamable-http'],
    scopes: { 'mcp:tools': 'Use the tools', 'mcp:admin': 'Use the admin tools' },
    requiredScopes: ['mcp:tools'],
    tools,
  });

  const callEcho = async () => (await mcpPost(`${gatewayUrl}/mcp`, token, toolsCall('echo', { text: 'hi' }))).status;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-reload-'));
    backend = createServer((request, response) => {
      if (request.method === 'GET') {
        // A Streamable HTTP GET stream, held open until the gateway (or the test's end) closes it.
        response.writeHead(200, { 'content-type': 'text/event-stream' }).write(': open\n\n');
        return;
      }
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => {
        const id = (JSON.parse(body || '{}') as { id?: unknown }).id ?? null;
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id, result: { content: [] } }));
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const port = await freePort();
    gatewayUrl = `http://127.0.0.1:${port}`;
    const keysFile = join(dir, 'keys.json');
    await writeFile(keysFile, serializeKeySet(keySet), { mode: 0o600 });
    configFile = join(dir, 'gatehouse.yaml');
    config = {
      mode: 'demo',
      server: { host: '127.0.0.1', port, publicUrl: gatewayUrl },
      store: { sqlitePath: join(dir, 'gatehouse.db') },
      keys: { source: 'file', file: keysFile },
      log: { format: 'json', level: 'info' },
      // Another identity provider than the local one, so no demo stand-in starts; nothing here signs in.
      upstream: { type: 'oidc', issuer: 'http://127.0.0.1:9/', clientId: 'gw', clientAuth: { method: 'client_secret_post', clientSecret: 'not-used' } },
      routes: [route({})],
    };
    await writeFile(configFile, stringify(config));
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('GATEHOUSE_')));
    child = spawn(process.execPath, [cliMain, 'start', '--config', configFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    await waitForOutput(/listening on/, 0);
    token = await mintAccessToken(keyringFromKeySet(keySet), gatewayUrl, { aud: `${gatewayUrl}/mcp`, scope: 'mcp:tools' });
  });

  after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    backend.closeAllConnections();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('applies a new tool policy on SIGHUP, and says what would need a restart', async () => {
    assert.equal(await callEcho(), 200, output);
    await writeFile(configFile, stringify({ ...config, server: { ...(config.server as object), shutdownGraceMs: 1234 }, routes: [route({ echo: { scopes: ['mcp:admin'] } })] }));
    const from = output.length;
    child.kill('SIGHUP');
    const line = JSON.parse(await waitForOutput(/\{[^\n]*configuration reloaded[^\n]*\}/, from)) as { applied: string[]; needsRestart: string[]; msg: string };
    assert.deepEqual(line.applied, ['routes[/mcp].tools']);
    assert.deepEqual(line.needsRestart, ['server']);
    assert.match(line.msg, /applied routes\[\/mcp\]\.tools; changed but not applied until a restart: server$/);
    assert.equal(await callEcho(), 403, 'the tool now needs mcp:admin');
    assert.equal(child.exitCode, null);
  });

  it('ends the open streams of tokens that lack a scope the reload made their route require, and no others', async () => {
    const open = async (scope: string) => {
      const streamToken = await mintAccessToken(keyringFromKeySet(keySet), gatewayUrl, { aud: `${gatewayUrl}/mcp`, scope });
      const response = await fetch(`${gatewayUrl}/mcp`, { headers: { authorization: `Bearer ${streamToken}`, accept: 'text/event-stream' } });
      assert.equal(response.status, 200);
      return followStream(response);
    };
    const narrow = await open('mcp:tools');
    const wide = await open('mcp:tools mcp:admin');
    const tools = { echo: { scopes: ['mcp:admin'] } };
    await writeFile(configFile, stringify({ ...config, routes: [{ ...route(tools), requiredScopes: ['mcp:tools', 'mcp:admin'] }] }));
    const from = output.length;
    child.kill('SIGHUP');
    await waitForOutput(/open streams cut: a reload made their route require a scope their token lacks/, from);
    await narrow.end;
    assert.equal(wide.ended(), false, 'a token with every scope the route now requires keeps its stream');
    // Back to the previous scopes for the next case.
    await writeFile(configFile, stringify({ ...config, routes: [route(tools)] }));
    const again = output.length;
    child.kill('SIGHUP');
    await waitForOutput(/configuration reloaded/, again);
    assert.equal(wide.ended(), false);
  });

  it('refuses a broken file with the messages of config check; the running configuration keeps serving', async () => {
    // The tool policy removed (which would allow echo again) and a typo: the whole file is refused.
    await writeFile(configFile, stringify({ ...config, routes: [route({})], servr: {} }));
    const check = spawnSync(process.execPath, [cliMain, 'config', 'check', configFile, '--json'], { encoding: 'utf8', env: {} });
    assert.equal(check.status, 2, check.stdout + check.stderr);
    const { problems } = JSON.parse(check.stdout) as { problems: string[] };
    assert.deepEqual(problems, ['servr: unknown key — did you mean "server"?']);

    const from = output.length;
    child.kill('SIGHUP');
    const line = JSON.parse(await waitForOutput(/\{[^\n]*configuration reload refused[^\n]*\}/, from)) as { problems: string[]; msg: string };
    assert.deepEqual(line.problems, problems);
    assert.match(line.msg, /the running configuration is unchanged$/);
    assert.equal(await callEcho(), 403, 'the policy loaded before still applies');
    assert.equal(child.exitCode, null, 'the process is still running');
  });
});
