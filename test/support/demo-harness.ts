import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { stringify } from 'yaml';
import { assembleGatewayParts, type AssembleOptions } from '../../src/app/assemble-parts.ts';
import { startGateway, type RunningGateway } from '../../src/app/start-gateway.ts';
import type { SignalSource } from '../../src/server/graceful-shutdown.ts';
import { demoConfigInput } from '../../src/config/demo-defaults.ts';
export { freePort } from './ports.ts';
import { freePort } from './ports.ts';

/**
 * The whole local demo, in this process, on free ports: the gateway started exactly as `gatehouse start` starts it
 * (config file with `mode: demo`, the real assembly, the real local IdP, directory API and sample Graph server), with
 * a temp SQLite file (or a real Redis), known test users and settings a test may change (short token lifetimes, a
 * trusted test CA for CIMD, a pre-registered client). Plus a headless Chromium helper that signs a user in through
 * the consent page and the local IdP's form.
 */

export interface DemoUser {
  username: string;
  password: string;
  name: string;
  email: string;
  /** The directory (object) id the directory API answers `/v1.0/me` with. */
  id: string;
}

/** Two users with fixed passwords, like the demo's own default users (whose passwords change on every start). */
export const DEMO_USERS: readonly DemoUser[] = [
  { id: '5f0b9a4e-9d1c-4c8e-a3f1-6f0d1b2c3a01', username: 'adele', password: 'adele-e2e-password', name: 'Adele Vance', email: 'adele.vance@gatehouse.test' },
  { id: '8c2d7e61-3b4a-4f9e-b0c5-2e1f4a6d7b02', username: 'alex', password: 'alex-e2e-password', name: 'Alex Wilber', email: 'alex.wilber@gatehouse.test' },
];

export interface DemoOptions {
  /** Deep-merged over the harness's demo settings (e.g. `{ authorization: { accessTokenTtlSeconds: 5 } }`). */
  config?: Record<string, unknown>;
  /** `redis://…` to use a Redis store instead of the temp SQLite file. */
  redisUrl?: string;
  assemble?: AssembleOptions;
  /** Local IdP flags per username (src/demo/local-idp/users.ts), e.g. `{ adele: { requireMfa: true } }`. */
  userFlags?: Record<string, { requireMfa?: boolean; requireConsent?: boolean; requireInteraction?: boolean }>;
  /** The `/mcp` route's `identity` (default: the demo's identity assertion), e.g. `{ mode: 'obo', downstream: 'graph' }`. */
  mcpIdentity?: Record<string, unknown>;
  /** The environment `gatehouse start` sees (e.g. `OTEL_*`); empty by default. */
  env?: Record<string, string>;
  /** Where the gateway listens for SIGHUP (a test's emitter); by default it hears none. */
  signals?: SignalSource;
}

export interface RunningDemo {
  publicUrl: string;
  mcpUrl: string;
  identityProviderUrl: string;
  users: readonly DemoUser[];
  /** Everything `gatehouse start` printed (the banner). */
  output: string[];
  gateway: RunningGateway;
  /** The SQLite store's file, when the demo runs on SQLite (another connection may read it). */
  sqlitePath?: string;
  /** The configuration file it was started with (what an admin command beside it is given). */
  configFile: string;
  close(): Promise<void>;
}


const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function merge(base: Record<string, unknown>, given: Record<string, unknown>): Record<string, unknown> {
  const merged = { ...base };
  for (const [key, value] of Object.entries(given)) {
    const current = merged[key];
    merged[key] = isRecord(current) && isRecord(value) ? merge(current, value) : value;
  }
  return merged;
}

/** Signal listeners the harness never fires: the test stops the demo with close(), not SIGTERM. */
const noSignals: SignalSource = { on: () => undefined, off: () => undefined };

/**
 * The demo's parts listen on ports written into its config before it starts, so another process can take one of them
 * in between (any outgoing connection on this machine may be given it as its local port). That start fails with "is
 * in use", and is tried again on new ports.
 */
export async function startDemo(options: DemoOptions = {}): Promise<RunningDemo> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDemoOnce(options);
    } catch (error) {
      if (attempt >= 3 || !/ is in use/.test(String((error as Error).message))) throw error;
    }
  }
}

async function startDemoOnce(options: DemoOptions): Promise<RunningDemo> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-e2e-'));
  await mkdir(join(dir, '.gatehouse'));
  const [port, identityProviderPort, graphServerPort, directoryApiPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const usersFile = join(dir, 'users.json');
  await writeFile(
    usersFile,
    JSON.stringify(
      DEMO_USERS.map((user) => ({
        ...user,
        groups: user.username === 'alex' ? ['gatehouse-users', 'gatehouse-admins'] : ['gatehouse-users'],
        ...options.userFlags?.[user.username],
      })),
    ),
  );
  const demoPorts = { identityProviderPort, graphServerPort, directoryApiPort };
  // Arrays replace rather than merge: the demo's own routes, with the `/mcp` route's identity swapped.
  const routes = options.mcpIdentity
    ? { routes: (demoConfigInput({ port, demo: demoPorts }).routes as Array<Record<string, unknown>>).map((route) => (route.path === '/mcp' ? { ...route, identity: options.mcpIdentity } : route)) }
    : {};
  const settings = merge(
    {
      mode: 'demo',
      server: { port },
      store: options.redisUrl ? { type: 'redis', redisUrl: options.redisUrl, keyPrefix: `e2e-${port}:` } : { sqlitePath: join(dir, '.gatehouse', 'gatehouse.db') },
      demo: { ...demoPorts, usersFile },
      ...routes,
    },
    options.config ?? {},
  );
  const file = join(dir, 'gatehouse.yaml');
  await writeFile(file, stringify(settings));

  const output: string[] = [];
  const io = { stdout: (text: string) => void output.push(text), stderr: (text: string) => void output.push(text), env: options.env ?? {}, cwd: dir };
  let gateway: RunningGateway;
  try {
    gateway = await startGateway({
      file,
      io,
      logLevel: process.env.GATEHOUSE_E2E_LOG === '1' ? 'info' : 'error',
      signals: options.signals ?? noSignals,
      // What the start loaded from the environment (tracing) reaches the parts, as in production.
      assembleParts: (ctx, given) => assembleGatewayParts(ctx, { ...options.assemble, ...(given.tracing ? { tracing: given.tracing } : {}) }),
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const publicUrl = `http://localhost:${port}`;
  return {
    publicUrl,
    mcpUrl: `${publicUrl}/mcp`,
    identityProviderUrl: `http://localhost:${identityProviderPort}`,
    users: DEMO_USERS,
    output,
    gateway,
    configFile: file,
    ...(options.redisUrl ? {} : { sqlitePath: join(dir, '.gatehouse', 'gatehouse.db') }),
    async close() {
      gateway.lifecycle.dispose();
      await gateway.lifecycle.shutdown('test finished');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A loopback redirect URI that records what the authorization server sends back (a native MCP client's listener). */
export interface RedirectListener {
  url: string;
  /** Resolves with the next callback URL received. */
  next(): Promise<URL>;
  close(): Promise<void>;
}

export async function startRedirectListener(path = '/callback'): Promise<RedirectListener> {
  const waiting: Array<(url: URL) => void> = [];
  const received: URL[] = [];
  let port = 0;
  const server: Server = createHttpServer((request, response) => {
    const url = new URL(request.url ?? '/', `http://127.0.0.1:${port}`);
    response.writeHead(200, { 'content-type': 'text/plain' }).end('You can close this window.');
    if (url.pathname !== path) return;
    const resolve = waiting.shift();
    if (resolve) resolve(url);
    else received.push(url);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    next: () => {
      const ready = received.shift();
      return ready ? Promise.resolve(ready) : new Promise((resolve) => waiting.push(resolve));
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export { launchBrowser } from './browser.ts';

export const artifactsDir = process.env.GATEHOUSE_TEST_ARTIFACTS ?? join(import.meta.dirname, '..', '..', 'test-artifacts');

export interface SignInOptions {
  /** A fresh context is a new "browser"; reuse one to keep its cookies (remembered consent, IdP session). */
  context: BrowserContext;
  authorizationUrl: string;
  user: DemoUser;
  /** Where the flow ends: the client's redirect URI (prefix match). */
  redirectUri: string;
  decision?: 'approve' | 'deny';
  /** Saves `<prefix>-consent.png` and `<prefix>-sign-in.png` under test-artifacts/. */
  screenshotPrefix?: string;
}

export interface SignInResult {
  /** The URL the browser was sent to at the client. */
  callbackUrl: URL;
  /** Which pages the user saw, in order (`mfa`: the sign-in form asked for a second factor, a step-up). */
  pages: Array<'consent' | 'sign-in' | 'mfa'>;
}

/**
 * Drives one authorization in a real browser: whatever page comes — our consent page, the local IdP's sign-in form —
 * is answered, until the browser reaches the client's redirect URI.
 */
export async function signInWithBrowser(options: SignInOptions): Promise<SignInResult> {
  const { context, user, redirectUri, decision = 'approve', screenshotPrefix } = options;
  if (screenshotPrefix) await mkdir(artifactsDir, { recursive: true });
  const page: Page = await context.newPage();
  const pages: SignInResult['pages'] = [];
  try {
    await page.goto(options.authorizationUrl);
    for (let step = 0; step < 10; step += 1) {
      await page.waitForLoadState('load');
      if (page.url().startsWith(redirectUri)) return { callbackUrl: new URL(page.url()), pages };
      if ((await page.locator('button[value=approve]').count()) > 0) {
        pages.push('consent');
        if (screenshotPrefix) await page.screenshot({ path: join(artifactsDir, `${screenshotPrefix}-consent.png`), fullPage: true });
        await Promise.all([page.waitForNavigation(), page.click(`button[value=${decision}]`)]);
        continue;
      }
      if ((await page.locator('input#username').count()) > 0) {
        pages.push('sign-in');
        await page.fill('input#username', user.username);
        await page.fill('input#password', user.password);
        if ((await page.locator('input#otp').count()) > 0) {
          // The local IdP's step-up: the demo shows its one-time code on the page.
          pages.push('mfa');
          await page.fill('input#otp', await page.locator('#demo-otp').innerText());
        }
        if (screenshotPrefix) await page.screenshot({ path: join(artifactsDir, `${screenshotPrefix}-sign-in.png`), fullPage: true });
        await Promise.all([page.waitForNavigation(), page.click('button[value=login]')]);
        continue;
      }
      // A page we do not know (an error page): fail with what it says, so the test names the broken part.
      throw new Error(`unexpected page ${page.url()}: ${(await page.locator('body').innerText()).slice(0, 500)}`);
    }
    throw new Error(`the authorization did not reach ${redirectUri}; last page ${page.url()}`);
  } finally {
    await page.close();
  }
}

/**
 * Signs `user` in through the consent page and the IdP in a fresh browser context (closed afterwards) and returns the
 * authorization code, with `iss` when the redirect carried it (RFC 9207), from the client's redirect URI.
 */
export async function authorizationCodeFor(
  browser: Browser,
  input: { authorizationUrl: string; user: DemoUser; redirectUri: string },
): Promise<{ code: string; iss?: string }> {
  const context = await browser.newContext();
  try {
    const signIn = await signInWithBrowser({ context, ...input });
    const code = signIn.callbackUrl.searchParams.get('code');
    if (code === null) throw new Error(`no code in ${signIn.callbackUrl.href}`);
    const iss = signIn.callbackUrl.searchParams.get('iss');
    return iss === null ? { code } : { code, iss };
  } finally {
    await context.close();
  }
}
