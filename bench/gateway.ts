import { createServer, type AddressInfo } from 'node:net';
import { parseKeySet } from '../src/keys/key-set.ts';
import { keyringFromKeySet } from '../src/keys/key-set-keyring.ts';
import { createGatewayPlugin } from '../src/proxy/gateway-plugin.ts';
import { createRevokedGrantsCache } from '../src/grants/revoked-grants.ts';
import { systemClock } from '../src/runtime/clock.ts';
import type { GatehouseContext } from '../src/runtime/context.ts';
import { cryptoRandom } from '../src/runtime/random.ts';
import { configSchema } from '../src/config/schema.ts';
import { buildServer } from '../src/server/app.ts';
import { createLogger } from '../src/server/logger.ts';
import { createSqliteStore } from '../src/store/sqlite-store.ts';

/**
 * Child process 2 of the benchmark: a gateway exactly as production builds it (server skeleton + gateway plugin,
 * SQLite store, audit to the store, rate limits on), configured from the environment. Reports its peak RSS over IPC.
 */
const config = configSchema.parse(JSON.parse(process.env.BENCH_CONFIG ?? '{}'));
// The public URL (the token audience) must be known before the server is built, so a free port is found first.
if (config.server.port === 0) config.server.port = await freePort();
const publicUrl = `http://127.0.0.1:${config.server.port}`;
const store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 60_000 });
const ctx: GatehouseContext = {
  config,
  publicUrl,
  store,
  keyring: keyringFromKeySet(parseKeySet(process.env.BENCH_KEYSET ?? '')),
  clock: systemClock,
  random: cryptoRandom,
  // Request logging off: the benchmark measures the proxy, not log volume (production default is info).
  logger: createLogger({ level: 'warn' }),
  fetch: globalThis.fetch,
};
const revokedGrants = createRevokedGrantsCache({ store, clock: systemClock });
await revokedGrants.start();
const app = await buildServer(ctx, { plugins: [createGatewayPlugin(ctx, { revokedGrants })] });
app.server.maxConnections = 20_000;
await app.listen({ host: '127.0.0.1', port: config.server.port, backlog: 8192 });

// memoryUsage.rss() reads only the RSS: the full memoryUsage() walks the heap spaces and showed up in profiles.
let peakRss = process.memoryUsage.rss();
setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 50).unref();
process.on('message', (message) => {
  if (message === 'cpu') {
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  }
  if (message === 'reset-peak') peakRss = process.memoryUsage.rss();
  if (message === 'memory') process.send?.({ rss: process.memoryUsage.rss(), peakRss: Math.max(peakRss, process.memoryUsage.rss()) });
});
process.on('SIGTERM', () => process.exit(0));
process.send?.({ ready: publicUrl });

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
