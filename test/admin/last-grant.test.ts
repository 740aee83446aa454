import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { revokeGrantById } from '../../src/admin/grants.ts';
import { upstreamTokensRecord } from '../../src/records/upstream.ts';
import { downstreamTokenRecord } from '../../src/records/broker.ts';
import { readRecord, writeRecord } from '../../src/store/record-access.ts';
import {
  authorizationParams,
  authorize,
  grantIdOf,
  obtainTokens,
  pkcePair,
  registerPublicClient,
  startAuthorizationServer,
  TEST_IDENTITY,
  TestBrowser,
  type TestServer,
} from '../authorization/harness.ts';
import { deleteUpstreamTokens } from '../../src/upstream/token-vault.ts';

/**
 * When a person ends the last grant a user has, nothing Gatehouse holds for that user is left to act with: the sealed
 * upstream tokens (the IdP refresh token the broker uses) and the cached downstream tokens go at once. They stayed
 * for their TTL — 90 days for a refresh token — with no client left to use them.
 */
describe('the last grant of a user ended by a person', () => {
  let server: TestServer;
  before(async () => {
    server = await startAuthorizationServer();
  });
  after(async () => {
    await server?.close();
  });

  it("drops the user's upstream and downstream tokens, and not before the last one", async () => {
    const subject = TEST_IDENTITY.subject;
    const deps = { store: server.store, clock: server.ctx.clock, config: server.ctx.config };
    const first = grantIdOf((await obtainTokens(server, await registerPublicClient(server))).access_token);
    const second = grantIdOf((await obtainTokens(server, await registerPublicClient(server, { client_name: 'Second' }))).access_token);
    assert.ok(await readRecord(server.store, upstreamTokensRecord, subject), 'the sign-in stored the upstream tokens');
    const cached = { sealed: 'x', expiresAt: Date.now() + 60_000, scopes: ['User.Read'] };
    await writeRecord(server.store, downstreamTokenRecord, 'graph-key', cached, { ttlSeconds: 60, indexes: { subject } });

    await revokeGrantById(deps, first, { subject });
    assert.ok(await readRecord(server.store, upstreamTokensRecord, subject), 'another grant still uses them');

    await revokeGrantById(deps, second, { subject });
    assert.equal(await readRecord(server.store, upstreamTokensRecord, subject), undefined);
    assert.equal(await readRecord(server.store, downstreamTokenRecord, 'graph-key', { invalid: 'absent' }), undefined);
  });

  it('sends a signed-in user back through the IdP when their upstream tokens are gone, so the broker can serve the new grant', async () => {
    // With only the Gatehouse session, the grant was issued without them: the broker's 401 sent the client to
    // re-authorize, which the session answered the same way again.
    const subject = TEST_IDENTITY.subject;
    const browser = new TestBrowser();
    const client = await registerPublicClient(server, { client_name: 'Third' });
    const { challenge } = pkcePair();
    const params = authorizationParams(server, client.client_id, challenge);
    assert.ok((await authorize(server, browser, params)).url.searchParams.get('code'));
    await deleteUpstreamTokens({ store: server.store }, subject);
    const signIns = server.upstream.signIns;
    const other = await registerPublicClient(server, { client_name: 'Fourth' });
    const outcome = await authorize(server, browser, { ...params, client_id: other.client_id });
    assert.ok(outcome.url.searchParams.get('code'), outcome.url.href);
    assert.equal(server.upstream.signIns, signIns + 1, 'through the IdP, not on the session alone');
    assert.ok(await readRecord(server.store, upstreamTokensRecord, subject), 'fresh upstream tokens stored');
  });
});
