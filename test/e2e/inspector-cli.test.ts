import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { auth } from '@modelcontextprotocol/client';
import { launchBrowser, startDemo, startRedirectListener, authorizationCodeFor } from '../support/demo-harness.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';
import { startedForSuite } from '../support/suite-server.ts';

/**
 * The MCP Inspector's CLI calling a tool through the gateway with a bearer token the test obtained the way any client
 * does (DCR, consent, sign-in, code exchange) — the command a user copies from the README.
 */
const inspector = resolve(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'mcp-inspector');
const run = promisify(execFile);

describe('MCP Inspector CLI', { skip: existsSync(inspector) ? false : 'node_modules/.bin/mcp-inspector is not installed (@modelcontextprotocol/inspector)' }, () => {
  const listener = startedForSuite(startRedirectListener);
  const demo = startedForSuite(() => startDemo());
  const browser = startedForSuite(launchBrowser);
  let home: string;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'gatehouse-e2e-inspector-'));
  });
  after(async () => {
    if (home) await rm(home, { recursive: true, force: true });
  });

  async function obtainToken(): Promise<string> {
    const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'MCP Inspector (e2e)' });
    assert.equal(await auth(provider, { serverUrl: demo.mcpUrl }), 'REDIRECT');
    assert.ok(state.authorizationUrl);
    const user = demo.users[0];
    assert.ok(user);
    const { code, iss } = await authorizationCodeFor(browser, { authorizationUrl: state.authorizationUrl.href, user, redirectUri: listener.url });
    assert.equal(await auth(provider, { serverUrl: demo.mcpUrl, authorizationCode: code, ...(iss ? { iss } : {}) }), 'AUTHORIZED');
    assert.ok(state.tokens?.access_token);
    return state.tokens.access_token;
  }

  const inspectorCli = (args: string[]) =>
    run(process.execPath, [inspector, '--cli', demo.mcpUrl, '--transport', 'http', ...args], {
      env: { ...process.env, HOME: home, MCP_CATALOG_PATH: join(home, 'mcp.json') },
      timeout: 60_000,
    });

  it('calls `hello` through the gateway with the token, as the signed-in user', async () => {
    const token = await obtainToken();
    const { stdout } = await inspectorCli(['--method', 'tools/call', '--tool-name', 'hello', '--header', `Authorization: Bearer ${token}`]);
    // Without a `name` argument the sample server greets the user named in the gateway's identity assertion.
    assert.match(stdout, new RegExp(`Hello, ${demo.users[0]?.name}!`));
    assert.doesNotMatch(stdout, /"isError":\s*true/);
  });

  it('without a token, is told to authorize (the gateway\'s 401 challenge)', async () => {
    await assert.rejects(inspectorCli(['--method', 'tools/list']), (error: NodeJS.ErrnoException & { stdout?: string; stderr?: string }) => {
      assert.match(`${error.stdout ?? ''}${error.stderr ?? ''}`, /auth_required|401|unauthori[sz]ed/i);
      return true;
    });
  });
});
