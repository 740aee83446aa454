import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { listClients } from '../../src/admin/clients.ts';
import { configSchema } from '../../src/config/schema.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createOidcAdapter } from '../../src/store/oidc-adapter.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { CIMD_CLIENT, CONFIGURED_CLIENT, DCR_CLIENT, seedStore } from './seed.ts';

/**
 * The order of the client list (console and CLI): clients in use first. Anyone may register, and registrations newer
 * than every use pushed the clients people use off the console's first 200 rows.
 */
describe('client list order', () => {
  it('puts used clients and clients with grants before newer registrations nobody used', async () => {
    const clock = new ManualClock(Date.UTC(2026, 4, 1, 12));
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      await seedStore(store, clock);
      const clients = new (createOidcAdapter(store, clock))('Client');
      for (let i = 0; i < 5; i++) {
        await clients.upsert(`flood-${i}`, {
          client_id: `flood-${i}`,
          client_name: `Flood ${i}`,
          client_id_issued_at: Math.floor(clock.now() / 1000) + i,
          redirect_uris: ['https://flood.example/cb'],
          token_endpoint_auth_method: 'none',
        });
      }
      const config = configSchema.parse({ authorization: { clients: [{ clientId: CONFIGURED_CLIENT, redirectUris: ['https://configured.example/cb'] }] } });
      const order = (await listClients({ store, clock, config })).map((client) => client.clientId);
      const firstFlood = order.findIndex((id) => id.startsWith('flood-'));
      for (const used of [DCR_CLIENT, CIMD_CLIENT, CONFIGURED_CLIENT]) assert.ok(order.indexOf(used) < firstFlood, `${used} before the unused registrations: ${order.join(', ')}`);
      assert.deepEqual(order.slice(firstFlood), ['flood-4', 'flood-3', 'flood-2', 'flood-1', 'flood-0'], 'the unused newest first');
    } finally {
      await store.close();
    }
  });
});
