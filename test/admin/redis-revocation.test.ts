import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CliIo } from '../../src/cli/command.ts';
import { createClientsCommands } from '../../src/cli/commands/clients.ts';
import { createGrantsCommands } from '../../src/cli/commands/grants.ts';
import { runCli } from '../../src/cli/main.ts';
import { createRevokedGrantsCache, GRANT_REVOKED_CHANNEL, type RevokedGrantsCache } from '../../src/grants/revoked-grants.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { DCR_CLIENT, GRANTS, seedStore } from './seed.ts';

/**
 * The "done when" of the admin issue with replicas: a revocation from the CLI (its own process and connection) is
 * seen by a running replica's revoked-grants cache through Redis pub/sub, without waiting for a re-sync.
 */
describe('CLI revocations reach other replicas through Redis', () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12));
  let redis: RedisServer;
  let replica: Store;
  let cache: RevokedGrantsCache;
  let directory: string;
  let configFile: string;
  const commands = [...Object.values(createGrantsCommands()), ...Object.values(createClientsCommands())];

  const cli = async (...argv: string[]) => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text), env: {}, cwd: directory };
    const code = await runCli([...argv, '--config', configFile], io, commands);
    return { code, stdout, stderr };
  };

  /** Resolves with the next grant id published on the revocation channel (as the replica's cache receives it). */
  const nextRevocation = async (): Promise<{ received: Promise<string>; done: () => Promise<void> }> => {
    let resolve: (id: string) => void = () => {};
    const received = new Promise<string>((r) => (resolve = r));
    const unsubscribe = await replica.subscribe(GRANT_REVOKED_CHANNEL, (id) => resolve(id));
    return { received, done: unsubscribe };
  };

  before(async () => {
    redis = await startRedisServer();
    directory = await mkdtemp(join(tmpdir(), 'gatehouse-admin-redis-'));
    configFile = join(directory, 'gatehouse.yaml');
    await writeFile(configFile, `mode: demo\nstore:\n  type: redis\n  redisUrl: ${redis.url}\n  keyPrefix: "admin-test:"\n`);
    replica = await createRedisStore({ url: redis.url, keyPrefix: 'admin-test:', clock, purgeIntervalMs: 0 });
    await seedStore(replica, clock);
    // A long re-sync period: only pub/sub can make the revocation visible during this test.
    cache = createRevokedGrantsCache({ store: replica, clock, resyncIntervalMs: 3_600_000 });
    await cache.start();
  });
  after(async () => {
    await cache.stop();
    await replica.close();
    await redis.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('grants revoke: the replica refuses the grant as soon as the message arrives', async () => {
    const watch = await nextRevocation();
    assert.equal(cache.isRevoked(GRANTS.bobDcr), false);
    const result = await cli('grants', 'revoke', GRANTS.bobDcr, '--yes');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await watch.received, GRANTS.bobDcr);
    await watch.done();
    assert.equal(cache.isRevoked(GRANTS.bobDcr), true);
    assert.equal(cache.isRevoked(GRANTS.aliceDcr), false);
  });

  it('clients revoke: every grant of the client is refused by the replica', async () => {
    const watch = await nextRevocation();
    const result = await cli('clients', 'revoke', DCR_CLIENT, '--yes');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await watch.received, GRANTS.aliceDcr);
    await watch.done();
    assert.equal(cache.isRevoked(GRANTS.aliceDcr), true);
    assert.equal(cache.isRevoked(GRANTS.aliceCimd), false);
  });

  it('with Redis stopped, the CLI prints one line naming it and exits 1', async () => {
    await cache.stop();
    await redis.stop();
    const result = await cli('grants', 'list');
    assert.equal(result.code, 1);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /^gatehouse: store unavailable: Redis at 127\.0\.0\.1:\d+ is unreachable/);
  });
});
