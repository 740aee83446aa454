import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateKeySet, KeySetError, parseKeySet, serializeKeySet, type KeySetFile } from '../../src/keys/key-set.ts';

const now = Date.UTC(2026, 0, 1);

/** Every secret string in a key set: no error message may contain any of them. */
function secretsOf(keySet: KeySetFile): string[] {
  return [
    ...keySet.signingKeys.map((key) => String(key.jwk.d)),
    ...keySet.sealingKeys.map((key) => key.k),
  ];
}

function parseError(input: unknown): KeySetError {
  try {
    parseKeySet(input, 'keys.json');
  } catch (error) {
    assert.ok(error instanceof KeySetError);
    return error;
  }
  assert.fail('expected a KeySetError');
}

describe('key set', () => {
  for (const signingAlgorithm of ['ES256', 'EdDSA'] as const) {
    it(`generates a ${signingAlgorithm} signing key and a 32-byte sealing key that survive a file round trip`, () => {
      const keySet = generateKeySet({ signingAlgorithm, now });
      const [signing] = keySet.signingKeys;
      const [sealing] = keySet.sealingKeys;
      assert.equal(signing?.alg, signingAlgorithm);
      assert.equal(typeof signing?.jwk.d, 'string');
      assert.equal(signing?.createdAt, now);
      assert.equal(Buffer.from(sealing?.k ?? '', 'base64url').length, 32);
      assert.notEqual(signing?.kid, sealing?.kid);
      assert.deepEqual(parseKeySet(serializeKeySet(keySet)), keySet);
    });
  }

  it('generates different keys each time', () => {
    const first = generateKeySet({ signingAlgorithm: 'ES256', now });
    const second = generateKeySet({ signingAlgorithm: 'ES256', now });
    assert.notDeepEqual(secretsOf(first), secretsOf(second));
  });

  it('reports invalid JSON without quoting the text', () => {
    const keySet = generateKeySet({ signingAlgorithm: 'ES256', now });
    const broken = serializeKeySet(keySet).slice(0, -10);
    const error = parseError(broken);
    assert.match(error.message, /keys\.json: not valid JSON/);
    for (const secret of secretsOf(keySet)) assert.ok(!error.message.includes(secret.slice(0, 8)));
  });

  const cases: { name: string; change: (keySet: KeySetFile) => unknown; expect: RegExp }[] = [
    { name: 'a wrong version', change: (keySet) => ({ ...keySet, version: 2 }), expect: /version/ },
    { name: 'a missing sealing key list', change: (keySet) => Object.fromEntries(Object.entries(keySet).filter(([name]) => name !== 'sealingKeys')), expect: /sealingKeys/ },
    { name: 'an unknown member', change: (keySet) => ({ ...keySet, extra: true }), expect: /extra/ },
    {
      name: 'a short sealing key',
      change: (keySet) => ({ ...keySet, sealingKeys: keySet.sealingKeys.map((key) => ({ ...key, k: key.k.slice(0, 20) })) }),
      expect: /sealingKeys\[0\]\.k: must be 32 bytes/,
    },
    {
      name: 'a public-only signing key',
      change: (keySet) => {
        for (const key of keySet.signingKeys) delete key.jwk.d;
        return keySet;
      },
      expect: /signingKeys\[0\]\.jwk: must be a private key/,
    },
    {
      name: 'a signing key of the wrong curve',
      change: (keySet) => ({ ...keySet, signingKeys: keySet.signingKeys.map((key) => ({ ...key, alg: 'EdDSA' })) }),
      expect: /must be a OKP Ed25519 key for EdDSA/,
    },
    {
      name: 'a signing key whose public part does not match',
      change: (keySet) => {
        const other = generateKeySet({ signingAlgorithm: 'ES256', now });
        return { ...keySet, signingKeys: keySet.signingKeys.map((key) => ({ ...key, jwk: { ...key.jwk, x: other.signingKeys[0]?.jwk.x } })) };
      },
      expect: /does not match|not a valid private key/,
    },
    {
      name: 'no current signing key',
      change: (keySet) => ({ ...keySet, signingKeys: keySet.signingKeys.map((key) => ({ ...key, retiredAt: now })) }),
      expect: /signingKeys: must have exactly one current key/,
    },
    {
      name: 'two current sealing keys with the same id',
      change: (keySet) => ({ ...keySet, sealingKeys: [...keySet.sealingKeys, ...keySet.sealingKeys] }),
      expect: /exactly one current key.*found 2.*used twice/,
    },
    {
      name: 'a key id with a dot',
      change: (keySet) => ({ ...keySet, sealingKeys: keySet.sealingKeys.map((key) => ({ ...key, kid: 'a.b' })) }),
      expect: /sealingKeys\[0\]\.kid/,
    },
  ];
  for (const { name, change, expect } of cases) {
    it(`rejects ${name}, naming the problem and no key material`, () => {
      const keySet = generateKeySet({ signingAlgorithm: 'ES256', now });
      const error = parseError(change(structuredClone(keySet)));
      assert.match(error.message, expect);
      assert.match(error.message, /^keys\.json: /);
      for (const secret of secretsOf(keySet)) assert.ok(!error.message.includes(secret.slice(0, 8)), 'message leaks key material');
    });
  }
});
