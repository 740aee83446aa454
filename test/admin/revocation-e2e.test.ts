import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CliIo } from '../../src/cli/command.ts';
import { createGrantsCommands } from '../../src/cli/commands/grants.ts';
import { createClientsCommands } from '../../src/cli/commands/clients.ts';
import { runCli } from '../../src/cli/main.ts';
import { GRANT_REVOKED_CHANNEL } from '../../src/grants/revoked-grants.ts';
import { ManualClock, systemClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from '../proxy/harness.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { startConsoleHarness, type ConsoleHarness } from './console-harness.ts';
import { ALICE, BOB, CIMD_CLIENT, CONFIGURED_CLIENT, DCR_CLIENT, GRANTS, seedStore } from './seed.ts';

/**
 * The "done when": an operator revokes a grant or a client from the CLI or the console, or a user revokes an
 * app on /account, and the next MCP request with the old access token is refused by every replica. Two real gateway
 * replicas share a real Redis; their re-sync timer is pushed out of reach, so only pub/sub can tell them.
 */
describe('revocations end MCP access on every replica', { timeout: 60_000 }, () => {
  const keyring = createTestKeyring();
  const publicUrl = 'http://gateway.test';
  const keyPrefix = 'admin-e2e:';
  let redis: RedisServer;
  let backend: McpBackend;
  const stores: Store[] = [];
  let replicas: TestGateway[] = [];
  let consoleHarness: ConsoleHarness;
  let directory: string;
  let configFile: string;

  const openStore = async (): Promise<Store> => {
    const store = await createRedisStore({ url: redis.url, keyPrefix, clock: systemClock, purgeIntervalMs: 0 });
    stores.push(store);
    return store;
  };

  before(async () => {
    redis = await startRedisServer();
    backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
    const seeded = await openStore();
    await seedStore(seeded, new ManualClock());
    const config = { routes: [{ path: '/mcp', backend: backend.url }] };
    for (let i = 0; i < 2; i++) {
      replicas.push(await startTestGateway({ keyring, publicUrl, store: await openStore(), config, resyncIntervalMs: 3_600_000 }));
    }
    consoleHarness = await startConsoleHarness({ store: await openStore(), publicUrl: 'http://127.0.0.1:8080' });
    directory = await mkdtemp(join(tmpdir(), 'gatehouse-admin-e2e-'));
    configFile = join(directory, 'gatehouse.yaml');
    await writeFile(configFile, `mode: demo\nstore:\n  type: redis\n  redisUrl: ${redis.url}\n  keyPrefix: "${keyPrefix}"\n`);
  });
  after(async () => {
    for (const replica of replicas) await replica.close();
    replicas = [];
    await consoleHarness?.close();
    for (const store of stores) await store.close();
    await backend?.close();
    await redis?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  const tokenFor = (grantId: string, sub: string, clientId: string) =>
    mintAccessToken(keyring, publicUrl, { aud: `${publicUrl}/mcp`, gid: grantId, sub, clientId });

  const statusOn = async (replica: TestGateway, bearer: string): Promise<number> => {
    const response = await mcpPost(`${replica.url}/mcp`, bearer, toolsCall('echo', { text: 'hi' }));
    await response.text();
    return response.status;
  };

  /** Runs `revoke`, then waits (by event, not by time) until every replica's cache has heard of `grantId`. */
  const revokeAndAwait = async (grantId: string, revoke: () => Promise<void>): Promise<void> => {
    const watcher = stores[0] as Store;
    let heard: (id: string) => void = () => {};
    const received = new Promise<void>((resolve) => {
      heard = (id) => {
        if (id === grantId) resolve();
      };
    });
    const unsubscribe = await watcher.subscribe(GRANT_REVOKED_CHANNEL, (id) => heard(id));
    await revoke();
    await received;
    await unsubscribe();
    // Each replica's subscription is its own connection: wait for its own delivery, never a fixed sleep.
    for (const replica of replicas) {
      while (!replica.revokedGrants.isRevoked(grantId)) await new Promise((resolve) => setImmediate(resolve));
    }
  };

  const cli = async (...argv: string[]) => {
    let stderr = '';
    const io: CliIo = { stdout: () => {}, stderr: (text) => (stderr += text), env: {}, cwd: directory };
    const code = await runCli([...argv, '--config', configFile], io, [...Object.values(createGrantsCommands()), ...Object.values(createClientsCommands())]);
    assert.equal(code, 0, stderr);
  };

  const consoleSession = async (identity: typeof ALICE) => {
    consoleHarness.signInAs(identity);
    const begin = await consoleHarness.app.inject({ url: '/admin/sign-in?return=/account' });
    const callback = await consoleHarness.app.inject({ url: String(begin.headers.location) });
    const cookie = ([] as string[]).concat(callback.headers['set-cookie'] ?? []).find((value) => value.startsWith('gatehouse-console='))?.split(';')[0] ?? '';
    const page = await consoleHarness.app.inject({ url: '/account', headers: { cookie } });
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
    return { cookie, csrf };
  };
  const consolePost = async (session: { cookie: string; csrf: string }, url: string, form: Record<string, string> = {}) => {
    const response = await consoleHarness.app.inject({
      method: 'POST',
      url,
      headers: { cookie: session.cookie, origin: 'http://127.0.0.1:8080', 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ ...form, csrf: session.csrf }).toString(),
    });
    assert.equal(response.statusCode, 303, response.body);
  };

  it('CLI grants revoke', async () => {
    const bearer = await tokenFor(GRANTS.bobConfigured, BOB.subject, CONFIGURED_CLIENT);
    for (const replica of replicas) assert.equal(await statusOn(replica, bearer), 200);
    await revokeAndAwait(GRANTS.bobConfigured, () => cli('grants', 'revoke', GRANTS.bobConfigured, '--yes'));
    for (const replica of replicas) assert.equal(await statusOn(replica, bearer), 401);
  });

  it('console: an admin revokes a grant', async () => {
    const bearer = await tokenFor(GRANTS.aliceCimd, ALICE.subject, CIMD_CLIENT);
    for (const replica of replicas) assert.equal(await statusOn(replica, bearer), 200);
    const admin = await consoleSession(ALICE);
    await revokeAndAwait(GRANTS.aliceCimd, () => consolePost(admin, `/admin/grants/${GRANTS.aliceCimd}/revoke`));
    for (const replica of replicas) assert.equal(await statusOn(replica, bearer), 401);
  });

  it('/account: a user revokes their app', async () => {
    const bearer = await tokenFor(GRANTS.bobDcr, BOB.subject, DCR_CLIENT);
    for (const replica of replicas) assert.equal(await statusOn(replica, bearer), 200);
    const bob = await consoleSession(BOB);
    await revokeAndAwait(GRANTS.bobDcr, () => consolePost(bob, `/account/grants/${GRANTS.bobDcr}/revoke`));
    for (const replica of replicas) assert.equal(await statusOn(replica, bearer), 401);
  });

  it('CLI clients revoke: the client\'s remaining grants are refused too', async () => {
    const bearer = await tokenFor(GRANTS.aliceDcr, ALICE.subject, DCR_CLIENT);
    for (const replica of replicas) assert.equal(await statusOn(replica, bearer), 200);
    await revokeAndAwait(GRANTS.aliceDcr, () => cli('clients', 'revoke', DCR_CLIENT, '--yes'));
    for (const replica of replicas) assert.equal(await statusOn(replica, bearer), 401);
  });
});
