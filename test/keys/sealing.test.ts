import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SealError, sealedKeyId, sealValue, unsealValue, type SealingKeyMaterial } from '../../src/keys/sealing.ts';

const keyA: SealingKeyMaterial = { kid: 'key-a', key: randomBytes(32) };
const keyB: SealingKeyMaterial = { kid: 'key-b', key: randomBytes(32) };
const keys = new Map([keyA, keyB].map((key) => [key.kid, key]));
const find = (kid: string) => keys.get(kid);

/** Flips one bit of one base64url part of an envelope, keeping it well-formed. */
function tamper(sealed: string, partIndex: number): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[partIndex] ?? '', 'base64url');
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  parts[partIndex] = bytes.toString('base64url');
  return parts.join('.');
}

describe('sealing', () => {
  it('round-trips a value under its context, with the key id in the envelope', () => {
    const secret = 'upstream-refresh-token-ünïcode';
    const sealed = sealValue(keyA, secret, 'grant:g1');
    assert.equal(sealed.split('.').length, 5);
    assert.equal(sealedKeyId(sealed), 'key-a');
    assert.ok(!sealed.includes(secret));
    assert.equal(unsealValue(find, sealed, 'grant:g1'), secret);
  });

  it('uses a fresh IV for every message', () => {
    const first = sealValue(keyA, 'same', 'ctx');
    const second = sealValue(keyA, 'same', 'ctx');
    assert.notEqual(first.split('.')[2], second.split('.')[2]);
    assert.notEqual(first, second);
  });

  it('never repeats an IV across refills of the IV pool, and every value opens', () => {
    // The pool holds 256 IVs: 1,000 seals cross three refills. A slice handed out twice, a refill skipped or one
    // made while a view is still in use shows up as a repeated IV or a value that no longer opens.
    const ivs = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const sealed = sealValue(keyA, `value ${i}`, `ctx ${i}`);
      const iv = sealed.split('.')[2] ?? '';
      assert.equal(Buffer.from(iv, 'base64url').length, 12);
      assert.ok(!ivs.has(iv), `IV repeated at seal ${i}`);
      ivs.add(iv);
      assert.equal(unsealValue(find, sealed, `ctx ${i}`), `value ${i}`);
    }
  });

  it('rejects a value moved to another context (another user record)', () => {
    const sealed = sealValue(keyA, 'token of user 1', 'grant:user-1');
    assert.throws(() => unsealValue(find, sealed, 'grant:user-2'), SealError);
  });

  for (const [name, index] of [['iv', 2], ['ciphertext', 3], ['tag', 4]] as const) {
    it(`rejects a tampered ${name}`, () => {
      const sealed = sealValue(keyA, 'secret value', 'ctx');
      assert.throws(() => unsealValue(find, tamper(sealed, index), 'ctx'), SealError);
    });
  }

  it('rejects an envelope re-labelled with another key id', () => {
    const sealed = sealValue(keyA, 'secret value', 'ctx');
    const relabelled = sealed.replace('.key-a.', '.key-b.');
    assert.throws(() => unsealValue(find, relabelled, 'ctx'), SealError);
  });

  it('rejects an unknown key id without naming keys in the error', () => {
    const sealed = sealValue({ kid: 'gone', key: randomBytes(32) }, 'secret value', 'ctx');
    assert.throws(
      () => unsealValue(find, sealed, 'ctx'),
      (error: unknown) => error instanceof SealError && !/key-a|key-b|gone/.test(error.message),
    );
  });

  it('rejects a truncated tag', () => {
    const sealed = sealValue(keyA, 'secret value', 'ctx');
    const parts = sealed.split('.');
    parts[4] = Buffer.from(parts[4] ?? '', 'base64url').subarray(0, 4).toString('base64url');
    assert.throws(() => unsealValue(find, parts.join('.'), 'ctx'), SealError);
  });

  for (const malformed of ['', 'v1', 'v2.key-a.a.b.c', 'v1.key-a.!!.b.c', 'v1.key-a.a.b.c.d', 'not a sealed value']) {
    it(`rejects malformed input ${JSON.stringify(malformed)}`, () => {
      assert.throws(() => unsealValue(find, malformed, 'ctx'), SealError);
    });
  }
});
