import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { auth } from '@modelcontextprotocol/client';
import Provider from 'oidc-provider';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { stringify } from 'yaml';
import { startGateway, type RunningGateway } from '../../src/app/start-gateway.ts';
import type { SignalSource } from '../../src/server/graceful-shutdown.ts';
import { freePort, launchBrowser, startRedirectListener, type RedirectListener } from '../support/demo-harness.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';

/**
 * Gatehouse in front of an OpenID Connect provider it knows nothing about: a standalone `oidc-provider` with its
 * default, conformant claims behaviour — scope claims (`profile`, `email`, the custom `groups`) in userinfo and not in
 * the ID token (OIDC Core §5.4), and its own stock sign-in and consent pages. Nothing of Gatehouse's local identity
 * provider is used. The gateway must read the user's groups from userinfo, or the group policy on `secret_tool`
 * (and `admin.groups`) could never match anyone.
 */
interface ThirdPartyUser {
  login: string;
  name: string;
  email: string;
  groups: string[];
}

const USERS: readonly ThirdPartyUser[] = [
  { login: 'morgan', name: 'Morgan Member', email: 'morgan@idp.test', groups: ['mcp-admins', 'staff'] },
  { login: 'sam', name: 'Sam Staff', email: 'sam@idp.test', groups: ['staff'] },
];
const CLIENT_SECRET = 'third-party-idp-client-secret';
const noSignals: SignalSource = { on: () => undefined, off: () => undefined };

async function startThirdPartyProvider(port: number, redirectUri: string): Promise<{ issuer: string; close(): Promise<void> }> {
  const issuer = `http://localhost:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'gatehouse',
        client_secret: CLIENT_SECRET,
        redirect_uris: [redirectUri],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    claims: { openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'], groups: ['groups'] },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    cookies: { keys: ['third-party-idp-cookie-key-for-tests'] },
    findAccount: (_ctx: unknown, id: string) => {
      const user = USERS.find((candidate) => candidate.login === id);
      if (!user) return undefined;
      return {
        accountId: id,
        claims: () => ({ sub: id, name: user.name, email: user.email, email_verified: true, groups: user.groups }),
      };
    },
  } as ConstructorParameters<typeof Provider>[1]);
  const server: Server = createServer(provider.callback());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    issuer,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Answers whatever page comes: Gatehouse's consent page, then the provider's stock sign-in form (any password) and
 * its consent prompt, until the browser reaches the client's redirect URI.
 */
async function authorizeInBrowser(context: BrowserContext, authorizationUrl: string, user: ThirdPartyUser, redirectUri: string): Promise<URL> {
  const page: Page = await context.newPage();
  try {
    await page.goto(authorizationUrl);
    for (let step = 0; step < 10; step += 1) {
      await page.waitForLoadState('load');
      if (page.url().startsWith(redirectUri)) return new URL(page.url());
      if ((await page.locator('button[value=approve]').count()) > 0) {
        await Promise.all([page.waitForNavigation(), page.click('button[value=approve]')]);
      } else if ((await page.locator('input[name=login]').count()) > 0) {
        await page.fill('input[name=login]', user.login);
        await page.fill('input[name=password]', 'any password');
        await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      } else if ((await page.locator('input[name=prompt][value=consent]').count()) > 0) {
        await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      } else {
        throw new Error(`unexpected page ${page.url()}: ${(await page.locator('body').innerText()).slice(0, 500)}`);
      }
    }
    throw new Error(`the authorization did not reach ${redirectUri}; last page ${page.url()}`);
  } finally {
    await page.close();
  }
}

describe('a third-party OpenID Connect provider (oidc-provider, default conformant claims)', () => {
  let dir: string;
  let idp: { issuer: string; close(): Promise<void> };
  let backend: McpBackend;
  let gateway: RunningGateway;
  let listener: RedirectListener;
  let browser: Browser;
  let publicUrl: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-third-party-'));
    const [port, idpPort] = [await freePort(), await freePort()];
    publicUrl = `http://localhost:${port}`;
    idp = await startThirdPartyProvider(idpPort, `${publicUrl}/callback`);
    backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
    const file = join(dir, 'gatehouse.yaml');
    await writeFile(
      file,
      stringify({
        mode: 'production',
        server: { publicUrl, host: '127.0.0.1', port },
        store: { type: 'sqlite', sqlitePath: join(dir, 'gatehouse.db') },
        upstream: {
          type: 'oidc',
          issuer: idp.issuer,
          clientId: 'gatehouse',
          clientAuth: { method: 'client_secret_post', clientSecret: CLIENT_SECRET },
          scopes: ['openid', 'profile', 'email', 'groups'],
        },
        routes: [{ path: '/mcp', backend: backend.url, tools: { secret_tool: { groups: ['mcp-admins'] } } }],
        admin: { groups: ['mcp-admins'] },
        dev: { insecureCookies: true },
      }),
    );
    const output: string[] = [];
    const io = { stdout: (text: string) => void output.push(text), stderr: (text: string) => void output.push(text), env: {}, cwd: dir };
    gateway = await startGateway({ file, io, logLevel: 'error', signals: noSignals });
    listener = await startRedirectListener();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await listener?.close();
    if (gateway) {
      gateway.lifecycle.dispose();
      await gateway.lifecycle.shutdown('test finished');
    }
    await backend?.close();
    await idp?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function tokenFor(user: ThirdPartyUser): Promise<string> {
    const mcpUrl = `${publicUrl}/mcp`;
    const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'Third-party IdP client (e2e)' });
    assert.equal(await auth(provider, { serverUrl: mcpUrl }), 'REDIRECT');
    assert.ok(state.authorizationUrl);
    const context = await browser.newContext();
    try {
      const callback = await authorizeInBrowser(context, state.authorizationUrl.href, user, listener.url);
      const code = callback.searchParams.get('code');
      assert.ok(code, `no code in ${callback.href}`);
      const iss = callback.searchParams.get('iss') ?? undefined;
      assert.equal(await auth(provider, { serverUrl: mcpUrl, authorizationCode: code, ...(iss ? { iss } : {}) }), 'AUTHORIZED');
    } finally {
      await context.close();
    }
    assert.ok(state.tokens?.access_token);
    return state.tokens.access_token;
  }

  const callTool = (token: string, name: string, args: Record<string, unknown> = {}) =>
    fetch(`${publicUrl}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } }),
    });

  it('the provider keeps groups out of the ID token (so only userinfo has them)', async () => {
    const metadata = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    assert.equal(typeof metadata.userinfo_endpoint, 'string');
    assert.ok((metadata.claims_supported as string[]).includes('groups'));
  });

  it('a member of the policy group calls the group-only tool; another user of the same provider is refused', async () => {
    const member = USERS[0];
    const other = USERS[1];
    assert.ok(member && other);
    const allowed = await callTool(await tokenFor(member), 'secret_tool');
    assert.equal(allowed.status, 200);
    const text = await allowed.text();
    // JSON or one SSE event, whichever the backend chose.
    const body = JSON.parse(text.startsWith('{') ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? '{}')) as { result?: unknown; error?: unknown };
    assert.match(JSON.stringify(body.result), /the secret/, text);

    const denied = await callTool(await tokenFor(other), 'secret_tool');
    assert.equal(denied.status, 403);
    const echo = await callTool(await tokenFor(other), 'echo', { text: 'hi' });
    assert.equal(echo.status, 200, 'the same user may call tools without a group policy');
  });

  it('signs the member into /admin by group, with the documented <issuer>#<sub> subject on /account', async () => {
    const member = USERS[0];
    assert.ok(member);
    const context = await browser.newContext();
    try {
      await authorizeInBrowser(context, `${publicUrl}/admin`, member, `${publicUrl}/admin`);
      const page = await context.newPage();
      const admin = await page.goto(`${publicUrl}/admin`);
      assert.equal(admin?.status(), 200);
      const account = await page.goto(`${publicUrl}/account`);
      assert.equal(account?.status(), 200);
      assert.match(await page.locator('body').innerText(), new RegExp(`${idp.issuer.replace(/[.:/]/g, '\\$&')}#${member.login}`));
    } finally {
      await context.close();
    }
  });
});
