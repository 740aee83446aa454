import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSessionFixture, type SessionFixture } from './session-backend.ts';

/**
 * `rateLimit.sessionsPerUser`: most clients never end their sessions, and a backend keeps each one until told. A user
 * opening sessions in a loop filled the sample server's table and every other user was refused; now the session
 * opened beyond the limit ends the user's oldest, at the gateway and (its DELETE) at the backend.
 */
describe('sessions per user', () => {
  let issued = 0;
  let fixture: SessionFixture;
  before(async () => {
    fixture = await startSessionFixture(() => `session-${++issued}`, { rateLimit: { sessionsPerUser: 2 } });
  });
  after(async () => {
    await fixture?.close();
  });

  it("ends the user's oldest session, at the gateway and at the backend, when one more opens; another user's stay", async () => {
    const { tokenOf, open, list, deleted, deleteHeaders } = fixture;
    const alice = await tokenOf('tenant/alice');
    const bob = await tokenOf('tenant/bob');
    const bobs = await open(bob);
    const first = await open(alice);
    const second = await open(alice);
    assert.deepEqual(deleted, [], 'within the limit, nothing ends');
    // The third's request carries a header of its client's own: the DELETE of another session does not.
    const third = await open(alice, { 'x-client-trace': 'third' });
    // Ended after the third session's answer, not before it: wait for the backend's DELETE.
    for (let wait = 0; wait < 200 && deleted.length === 0; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(deleted, [`${first} tenant/alice`]);
    assert.doesNotMatch(deleteHeaders[0] ?? '', /x-client-trace|content-type|content-length/, deleteHeaders[0]);
    assert.equal(await list(alice, first), 404, 'the oldest is refused as an ended session');
    assert.equal(await list(alice, second), 200);
    assert.equal(await list(alice, third), 200);
    assert.equal(await list(bob, bobs), 200, "another user's session is not counted with alice's");
  });

  it("bounds a user's sessions whatever clients open them, ending the opening client's own first", async () => {
    const { tokenOf, open, list, deleted } = fixture;
    const ofA = await tokenOf('tenant/carol', 'client-a');
    const ofB = await tokenOf('tenant/carol', 'client-b');
    const a1 = await open(ofA);
    const b1 = await open(ofB);
    deleted.length = 0;
    // Carol is at her limit of 2. client-b opens another: client-b's own oldest ends, at the backend too, as carol.
    const b2 = await open(ofB);
    for (let wait = 0; wait < 200 && deleted.length === 0; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(deleted, [`${b1} tenant/carol`]);
    assert.equal(await list(ofB, b1), 404);
    assert.equal(await list(ofA, a1), 200, "client-a's session stays while client-b has its own to give up");
    // A third client with none of its own (client ids cost nothing: any CIMD URL) cannot lift the bound: carol's
    // oldest, client-a's, is forgotten here — its id 404s — but not DELETEd in client-c's name.
    const ofC = await tokenOf('tenant/carol', 'client-c');
    deleted.length = 0;
    await open(ofC);
    for (let wait = 0; wait < 200 && (await list(ofA, a1)) === 200; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(await list(ofA, a1), 404);
    assert.equal(await list(ofB, b2), 200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(deleted, [], "no DELETE of client-a's session in client-c's name");
  });
});
