import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tokenExpiresAt } from '../../src/upstream/upstream-client.ts';

/**
 * How long the broker believes an IdP's access token lives. An `expires_in` of years (a broken or hostile answer)
 * kept the token in the cache — and its Redis TTL — for that long, every call forwarding it after it had died.
 */
describe("an access token's lifetime from the IdP's answer", () => {
  const now = Date.UTC(2026, 11, 7);
  const jwt = (payload: Record<string, unknown>) => `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;

  it('takes expires_in, an hour when absent', () => {
    assert.equal(tokenExpiresAt(now, 'opaque', 600), now + 600_000);
    assert.equal(tokenExpiresAt(now, 'opaque', undefined), now + 3_600_000);
  });

  it('bounds expires_in to 28 hours', () => {
    assert.equal(tokenExpiresAt(now, 'opaque', 1e9), now + 28 * 3_600_000);
    assert.equal(tokenExpiresAt(now, 'opaque', 1e12), now + 28 * 3_600_000);
  });

  it("takes a JWT's own exp when it is earlier, and ignores a payload it cannot read", () => {
    assert.equal(tokenExpiresAt(now, jwt({ exp: now / 1000 + 3600 }), 1e9), now + 3_600_000);
    assert.equal(tokenExpiresAt(now, jwt({ exp: now / 1000 + 7200 }), 600), now + 600_000);
    assert.equal(tokenExpiresAt(now, 'a.%%%.c', 600), now + 600_000);
    assert.equal(tokenExpiresAt(now, jwt({ exp: 'soon' }), 600), now + 600_000);
  });
});
