import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../support/demo-harness.ts';
import { createBrowserOpener } from './support/browser-opener.ts';
import { clientRow, installedVersion, type Registration } from './support/client-matrix.ts';
import { REFRESH_AFTER_MS, startForeignClientStage, type ForeignClientStage } from './support/foreign-client-demo.ts';
import { spawnStdioPeer } from './support/stdio-json-rpc.ts';

/**
 * Desktop-side clients as users run them, each doing its own OAuth against the demo: `mcp-remote` spawned over stdio
 * by an MCP host (the test speaks JSON-RPC on its stdin/stdout), and the MCP Inspector CLI. Each opens "the browser"
 * through `BROWSER`; the test's Chromium answers the consent page and the sign-in form; the client's own loopback
 * listener takes the code. Registration by DCR and by Client ID Metadata Document, a tool call as the signed-in user,
 * then — once the 4-second access token has expired — a call that refreshes without the browser.
 */
const bin = (name: string) => resolve(import.meta.dirname, '..', '..', 'node_modules', '.bin', name);

/**
 * The OAuth tokens a client keeps on disk, wherever in its JSON files (at any depth, also inside JSON-encoded
 * strings, as secret stores keep them): the test reads them only to see a refresh rotate them.
 */
async function storedTokens(dir: string): Promise<{ access: string[]; refresh: string[] }> {
  const found = { access: [] as string[], refresh: [] as string[] };
  const visit = (value: unknown): void => {
    if (typeof value === 'string' && value.startsWith('{')) {
      try {
        visit(JSON.parse(value));
      } catch {
        // not JSON: an ordinary string
      }
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'access_token' && typeof inner === 'string') found.access.push(inner);
        else if (key === 'refresh_token' && typeof inner === 'string') found.refresh.push(inner);
        else visit(inner);
      }
    }
  };
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries.filter((candidate) => candidate.isFile() && candidate.name.endsWith('.json'))) {
    visit(JSON.parse(await readFile(join(entry.parentPath, entry.name), 'utf8')));
  }
  return found;
}

/** One access and one refresh token stored before, different ones after: a refresh with rotation happened. */
function assertRotated(before: { access: string[]; refresh: string[] }, after: { access: string[]; refresh: string[] }): void {
  assert.equal(before.access.length, 1, `one stored access token, found ${before.access.length}`);
  assert.equal(before.refresh.length, 1, `one stored refresh token, found ${before.refresh.length}`);
  assert.equal(after.access.length, 1);
  assert.notEqual(after.access[0], before.access[0], 'a new access token');
  assert.notEqual(after.refresh[0], before.refresh[0], 'the refresh token was rotated');
}

const textOf = (result: unknown): string => JSON.stringify((result as { content?: unknown })?.content ?? result);

describe('desktop clients doing their own OAuth through the gateway', { concurrency: true }, () => {
  let stage: ForeignClientStage;
  before(async () => {
    stage = await startForeignClientStage('desktop-clients');
  });
  after(async () => {
    await stage?.close();
  });

  const expectClientId = (url: URL, registration: Registration) => {
    const clientId = url.searchParams.get('client_id');
    if (registration === 'CIMD') assert.equal(clientId, stage.cimd.clientId, 'CIMD: the document URL is the client id');
    else assert.match(clientId ?? '', /^[\w-]{20,}$/, 'DCR: a client id the gateway registered');
    assert.equal(url.searchParams.get('resource'), stage.demo.mcpUrl, 'RFC 8707 resource = the MCP route');
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
  };

  const mcpRemote = clientRow('mcp-remote');
  for (const registration of mcpRemote.registrations) {
    it(`mcp-remote ${mcpRemote.package.version} over stdio: ${registration}, browser sign-in, tools/call, silent refresh`, async () => {
      assert.equal(installedVersion(mcpRemote), mcpRemote.package.version);
      const home = await mkdtemp(join(stage.dir, 'mcp-remote-'));
      const opener = await createBrowserOpener(home);
      const port = await freePort();
      if (registration === 'CIMD') stage.cimdRedirectUris.push(`http://127.0.0.1:${port}/oauth/callback`);
      const cimd = registration === 'CIMD' ? ['--client-metadata-url', stage.cimd.clientId] : [];
      const configDir = join(home, 'auth');
      const peer = spawnStdioPeer(process.execPath, [bin('mcp-remote'), stage.demo.mcpUrl, String(port), '--host', '127.0.0.1', '--allow-http', ...cimd], {
        HOME: home,
        MCP_REMOTE_CONFIG_DIR: configDir,
        ...opener.env,
      });
      try {
        const initializing = peer.request('initialize', { protocolVersion: mcpRemote.revision, capabilities: {}, clientInfo: { name: 'e2e-desktop-host', version: '1.0.0' } });
        const url = await opener.next();
        expectClientId(url, registration);
        await stage.authorize(url);
        const initialized = await initializing;
        assert.equal((initialized.result as { protocolVersion?: string })?.protocolVersion, mcpRemote.revision, JSON.stringify(initialized));
        peer.notify('notifications/initialized');
        const name = stage.demo.users[0]?.name ?? '';
        const hello = await peer.request('tools/call', { name: 'hello', arguments: {} });
        assert.match(textOf(hello.result), new RegExp(`Hello, ${name}!`), JSON.stringify(hello));
        const first = await storedTokens(configDir);

        await sleep(REFRESH_AFTER_MS);
        const again = await peer.request('tools/call', { name: 'hello', arguments: {} });
        assert.match(textOf(again.result), new RegExp(`Hello, ${name}!`), JSON.stringify(again));
        assertRotated(first, await storedTokens(configDir));
        assert.equal(await opener.opened(), 1, 'the browser was needed once, not for the refresh');
      } catch (error) {
        throw new Error(`${String(error)}\nmcp-remote said:\n${peer.stderr().slice(-4000)}`, { cause: error });
      } finally {
        await peer.close();
      }
    });
  }

  const inspector = clientRow('inspector-oauth');
  for (const registration of inspector.registrations) {
    it(`Inspector CLI ${inspector.package.version}, its own OAuth: ${registration}, browser sign-in, tools/call, refresh on the next run`, async () => {
      assert.equal(installedVersion(inspector), inspector.package.version);
      const home = await mkdtemp(join(stage.dir, 'inspector-'));
      const opener = await createBrowserOpener(home);
      const callback = `http://127.0.0.1:${await freePort()}/oauth/callback`;
      if (registration === 'CIMD') stage.cimdRedirectUris.push(callback);
      const cimd = registration === 'CIMD' ? ['--client-metadata-url', stage.cimd.clientId] : [];
      const common = ['--callback-url', callback, '--format', 'json', ...cimd];
      const env = { ...process.env, HOME: home, MCP_CATALOG_PATH: join(home, 'mcp.json'), MCP_INSPECTOR_SECRET_STORE: 'file', MCP_AUTO_OPEN_ENABLED: 'true', ...opener.env };
      const runInspector = (...method: string[]) => {
        const child = spawn(process.execPath, [bin('mcp-inspector'), '--cli', stage.demo.mcpUrl, '--transport', 'http', ...method, ...common], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        const out = { stdout: '', stderr: '' };
        child.stdout.on('data', (chunk: Buffer) => (out.stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (out.stderr += chunk.toString()));
        const done = new Promise<typeof out & { code: number | null }>((done) => child.once('exit', (code) => done({ ...out, code })));
        return done;
      };
      const name = stage.demo.users[0]?.name ?? '';
      const first = runInspector('--method', 'tools/call', '--tool-name', 'hello');
      const url = await opener.next();
      expectClientId(url, registration);
      await stage.authorize(url);
      const run1 = await first;
      assert.equal(run1.code, 0, `${run1.stdout}\n${run1.stderr}`);
      assert.match(run1.stdout, new RegExp(`Hello, ${name}!`));
      const tokens = await storedTokens(home);

      // The next run, after the access token expired: the stored refresh token is used, no browser. `initialize`
      // reports the revision the Inspector negotiated through the gateway.
      await sleep(REFRESH_AFTER_MS);
      const run2 = await runInspector('--method', 'initialize');
      assert.equal(run2.code, 0, `${run2.stdout}\n${run2.stderr}`);
      const initialized = JSON.parse(run2.stdout) as { result?: { protocolVersion?: string } };
      assert.equal(initialized.result?.protocolVersion, inspector.revision, run2.stdout);
      assertRotated(tokens, await storedTokens(home));
      assert.equal(await opener.opened(), 1, 'the browser was needed once, not for the refresh');
    });
  }
});
