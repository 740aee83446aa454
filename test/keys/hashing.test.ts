import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { constantTimeEqual, hashClientSecret, hashGeneratedSecret, hashToken, isHashedClientSecret, looksGenerated, SecretCheckBusyError, verifyClientSecret } from '../../src/keys/hashing.ts';

// Small scrypt parameters keep the suite fast; the format and checks are the same as with the defaults.
const fast = { ln: 10, r: 8, p: 1 };

describe('hashToken', () => {
  it('is the base64url SHA-256 of the token and is deterministic', () => {
    const token = 'a-high-entropy-token';
    assert.equal(hashToken(token), createHash('sha256').update(token).digest('base64url'));
    assert.equal(hashToken(token), hashToken(token));
    assert.notEqual(hashToken(token), hashToken(`${token}x`));
    assert.match(hashToken(token), /^[A-Za-z0-9_-]{43}$/);
  });
});

describe('constantTimeEqual', () => {
  it('compares strings of any length', () => {
    assert.equal(constantTimeEqual('abc', 'abc'), true);
    assert.equal(constantTimeEqual('abc', 'abd'), false);
    assert.equal(constantTimeEqual('abc', 'abcd'), false);
    assert.equal(constantTimeEqual('', ''), true);
  });
});

describe('client secret hashing', () => {
  it('verifies the right secret and rejects a wrong one', async () => {
    const hash = await hashClientSecret('correct horse battery staple', fast);
    assert.equal(await verifyClientSecret('correct horse battery staple', hash), true);
    assert.equal(await verifyClientSecret('correct horse battery stapler', hash), false);
    assert.ok(!hash.includes('correct horse'));
  });

  it('salts: the same secret hashes differently each time, and both verify', async () => {
    const first = await hashClientSecret('same-secret-value', fast);
    const second = await hashClientSecret('same-secret-value', fast);
    assert.notEqual(first, second);
    assert.equal(await verifyClientSecret('same-secret-value', first), true);
    assert.equal(await verifyClientSecret('same-secret-value', second), true);
  });

  it('keeps the parameters in the hash string', async () => {
    const hash = await hashClientSecret('secret-secret-secret', fast);
    assert.match(hash, /^\$scrypt\$ln=10,r=8,p=1\$/);
  });

  it('uses the default parameters when none are given', async () => {
    const hash = await hashClientSecret('secret-secret-secret');
    assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$/);
    assert.equal(await verifyClientSecret('secret-secret-secret', hash), true);
  });

  it('hashes a generated secret with SHA-256, verifies it in constant time, and refuses a wrong or cut one', async () => {
    const generated = 'x'.repeat(10) + 'A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6_-';
    assert.ok(looksGenerated(generated));
    const hash = hashGeneratedSecret(generated);
    assert.match(hash, /^\$sha256\$[A-Za-z0-9_-]{43}$/);
    assert.ok(isHashedClientSecret(hash));
    assert.equal(await verifyClientSecret(generated, hash), true);
    assert.equal(await verifyClientSecret(`${generated}x`, hash), false);
    assert.equal(await verifyClientSecret(generated, hash.slice(0, -3)), false);
  });

  it('takes only a long base64url secret for a generated one: anything a person may have chosen gets scrypt', () => {
    for (const chosen of ['correct horse battery staple', 'short', 'a'.repeat(42), `${'a'.repeat(50)}!`]) assert.equal(looksGenerated(chosen), false, chosen);
  });

  it('rejects malformed or out-of-bounds hashes instead of throwing', async () => {
    const good = await hashClientSecret('secret-secret-secret', fast);
    const outOfBounds = good.replace('ln=10', 'ln=40');
    for (const hash of ['', 'plain-text-secret', '$scrypt$ln=10$abc', outOfBounds, good.slice(0, -2)]) {
      assert.equal(await verifyClientSecret('secret-secret-secret', hash), false, hash);
    }
  });

  it('runs one scrypt check at a time with a few waiting, and refuses the rest as busy instead of queueing them all', async () => {
    const hash = await hashClientSecret('the-configured-secret', fast);
    // Wrong secrets for one client, all asked at once: one derives, eight wait, the rest are refused at once.
    const outcomes = await Promise.allSettled(Array.from({ length: 14 }, (_, index) => verifyClientSecret(`wrong-${index}`, hash)));
    const judged = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
    assert.equal(judged.length, 9);
    assert.ok(judged.every((outcome) => outcome.value === false));
    assert.equal(refused.length, 5);
    assert.ok(refused.every((outcome) => outcome.reason instanceof SecretCheckBusyError));
    // Every place was given back: a check after the flood is judged.
    assert.equal(await verifyClientSecret('the-configured-secret', hash), true);
  });

  it("keeps one client's flood of wrong secrets from refusing another client: each client waits in its own places, served in turn", async () => {
    const flooded = await hashClientSecret('the-flooded-client-secret', fast);
    const other = await hashClientSecret('the-other-client-secret', fast);
    const order: string[] = [];
    const flood = Array.from({ length: 12 }, (_, index) =>
      verifyClientSecret(`guess-${index}`, flooded).then(
        () => void order.push('flood'),
        (error: unknown) => assert.ok(error instanceof SecretCheckBusyError),
      ),
    );
    // Asked while the flood holds every place of its own client: judged, and before the flood's last waiting check.
    const otherCheck = verifyClientSecret('the-other-client-secret', other).then((verified) => {
      order.push('other');
      return verified;
    });
    assert.equal(await otherCheck, true);
    await Promise.all(flood);
    assert.deepEqual(order.slice(0, 3), ['flood', 'flood', 'other'], 'the running check, then each client in turn');
    assert.equal(order.filter((entry) => entry === 'flood').length, 9, 'the flood had its own eight places, no more');
  });

  it("gives each caller address its own places, bounds a client's places together, and never lets one client's take another's", async () => {
    const hash = await hashClientSecret('a-client-secret-value', fast);
    const other = await hashClientSecret('the-other-client-value', fast);
    // One check from each of 100 addresses, all at once: one derives, 64 wait for the client, the rest are refused —
    // and another client's check, asked meanwhile, is judged (a cap shared by all clients refused it).
    let judgedBefore = 0;
    const flood = Promise.allSettled(
      Array.from({ length: 100 }, (_, index) => verifyClientSecret(`wrong-${index}`, hash, `192.0.2.${index}`).then((verified) => ((judgedBefore += 1), verified))),
    );
    assert.equal(await verifyClientSecret('the-other-client-value', other, '203.0.113.1'), true);
    // Clients are served in turn: the running check and at most one more of the flooded client's came first.
    assert.ok(judgedBefore <= 2, `${judgedBefore} of the flood's checks were judged first`);
    const outcomes = await flood;
    assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 65);
    assert.ok(outcomes.filter((outcome) => outcome.status === 'rejected').every((outcome) => outcome.reason instanceof SecretCheckBusyError));
    // A flood from one address holds only that address's places: the client's own check from another is judged.
    const fromOne = Array.from({ length: 12 }, (_, index) => verifyClientSecret(`guess-${index}`, hash, '198.51.100.7').catch((error: unknown) => error));
    assert.equal(await verifyClientSecret('a-client-secret-value', hash, '203.0.113.9'), true);
    assert.equal((await Promise.all(fromOne)).filter((outcome) => outcome instanceof SecretCheckBusyError).length, 3);
  });

  it('lets a client that proved its secret through a flood of wrong ones: the secret is not derived again', async () => {
    const hash = await hashClientSecret('another-configured-secret', fast);
    assert.equal(await verifyClientSecret('another-configured-secret', hash), true);
    const flood = Array.from({ length: 12 }, (_, index) => verifyClientSecret(`guess-${index}`, hash).catch((error: unknown) => error));
    // Asked while every place is taken: answered from what this process already verified, not refused as busy.
    assert.equal(await verifyClientSecret('another-configured-secret', hash), true);
    await Promise.all(flood);
    // A wrong secret is never remembered, and a near miss of the right one is still derived and refused.
    assert.equal(await verifyClientSecret('another-configured-secret!', hash), false);
    // The same secret against another stored hash (the secret was changed) is judged by that hash.
    assert.equal(await verifyClientSecret('another-configured-secret', await hashClientSecret('a-new-secret-value', fast)), false);
  });
});
