import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { createTokenBroker } from '../../../src/broker/token-broker.ts';
import { keyringFromKeySet } from '../../../src/keys/key-set-keyring.ts';
import { parseKeySet } from '../../../src/keys/key-set.ts';
import { systemClock } from '../../../src/runtime/clock.ts';
import { createRedisStore } from '../../../src/store/redis-store.ts';
import { brokerConfig } from './fixtures.ts';
import { httpUpstreamClient } from './http-upstream.ts';

/**
 * One gateway replica for the cross-process single-flight test: its own broker on the shared Redis. It connects,
 * says `ready`, waits for `go` on stdin (so all replicas start together), makes CALLS concurrent requests and prints
 * the access tokens it got as one JSON line.
 */
const { REDIS_URL, KEY_SET, TOKEN_URL, SUBJECT, CALLS, KEY_PREFIX } = process.env;
if (!REDIS_URL || !KEY_SET || !TOKEN_URL || !SUBJECT || !CALLS || !KEY_PREFIX) throw new Error('replica: missing environment');

const store = await createRedisStore({ url: REDIS_URL, keyPrefix: KEY_PREFIX, clock: systemClock, purgeIntervalMs: 0 });
const broker = createTokenBroker({
  config: brokerConfig(),
  store,
  keyring: keyringFromKeySet(parseKeySet(KEY_SET)),
  clock: systemClock,
  logger: pino({ level: 'silent' }),
  upstream: httpUpstreamClient(TOKEN_URL),
});

process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === 'go') break;
}
lines.close();
const results = await Promise.allSettled(
  Array.from({ length: Number(CALLS) }, () => broker.getDownstreamToken({ user: { subject: SUBJECT }, downstream: 'graph' })),
);
const tokens = results.map((result) => (result.status === 'fulfilled' ? result.value.accessToken : `error:${(result.reason as Error).message}`));
process.stdout.write(`${JSON.stringify({ tokens })}\n`);
await store.close();
