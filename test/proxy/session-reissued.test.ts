import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSessionFixture, type SessionFixture } from './session-backend.ts';

/**
 * A backend whose session ids repeat — a counter that starts over when it restarts — issues an id it issued before
 * to another user. The session is the new owner's: the earlier owner, still holding the id, must not reach it.
 */
describe('a session id the backend issues again', () => {
  // Every session the backend opens is `session-1`, as a counter restarted each time would have it.
  let fixture: SessionFixture;
  before(async () => {
    fixture = await startSessionFixture(() => 'session-1');
  });
  after(async () => {
    await fixture?.close();
  });

  it("is the new owner's; the earlier owner is refused as for an ended session", async () => {
    const { tokenOf, open, list, seen } = fixture;
    const alice = await tokenOf('tenant/alice');
    const bob = await tokenOf('tenant/bob');
    assert.equal(await open(alice), 'session-1');
    assert.equal(await list(alice, 'session-1'), 200);
    // The backend restarted: its counter issues session-1 again, to bob.
    assert.equal(await open(bob), 'session-1');
    assert.equal(await list(bob, 'session-1'), 200, 'the new owner uses the session the backend issued to them');
    assert.equal(await list(alice, 'session-1'), 404, "the earlier owner is kept out of bob's session");
    assert.deepEqual(seen, ['session-1 tools/list', 'session-1 tools/list'], "alice's second request never reached the backend");
  });
});
