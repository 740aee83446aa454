import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import {
  basicAuthorization,
  CONFIDENTIAL_CLIENT,
  confidentialClientConfig,
  obtainTokens,
  registerPublicClient,
  startAuthorizationServer,
  type RegisteredClient,
  type TestServer,
} from './harness.ts';

/**
 * Introspection of the gateway's own JWT access tokens reads the revocation from the store. During an outage it
 * answers 503 with Retry-After, and logs one warning naming the outage per request — not an error with a stack
 * trace (internal paths) per request, which a flood of introspections during a Redis freeze filled the log with.
 */
describe('introspecting an access token while the store is down', () => {
  let sqlite: Store;
  let server: TestServer;
  let client: RegisteredClient;
  let down = false;

  before(async () => {
    sqlite = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    const store = new Proxy(sqlite, {
      get(target, property, receiver) {
        if (property === 'get') {
          return (...args: Parameters<Store['get']>) => (down ? Promise.reject(new StoreUnavailableError('the store is unavailable: test outage')) : target.get(...args));
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    server = await startAuthorizationServer({ store, authorization: { clients: [confidentialClientConfig] } });
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server.close();
    await sqlite.close();
  });

  it('answers 503 with Retry-After and logs a warning naming the outage, without a stack trace', async () => {
    const tokens = await obtainTokens(server, client);
    const before = server.logs.lines().length;
    down = true;
    let response: Response;
    try {
      response = await fetch(`${server.publicUrl}/introspect`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuthorization(CONFIDENTIAL_CLIENT.clientId, CONFIDENTIAL_CLIENT.clientSecret) },
        body: new URLSearchParams({ token: tokens.access_token }).toString(),
      });
    } finally {
      down = false;
    }
    assert.equal(response.status, 503);
    assert.equal(response.headers.get('retry-after'), '5');
    assert.equal(((await response.json()) as { error: string }).error, 'temporarily_unavailable');
    const lines = server.logs.lines().slice(before).filter((line) => String(line['msg']).startsWith('access token introspection failed'));
    assert.equal(lines.length, 1, server.logs.text());
    assert.equal(lines[0]?.['level'], 40, 'a warning');
    assert.match(String(lines[0]?.['reason']), /test outage/);
    assert.doesNotMatch(JSON.stringify(lines[0]), /stack|\.ts:\d+/);
  });
});
