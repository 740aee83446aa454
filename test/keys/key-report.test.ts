import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatKeyTable, formatKeyTime, keyListingJson, nextPrunableAt } from '../../src/keys/key-report.ts';
import { generateKeySet } from '../../src/keys/key-set.ts';
import { keyRetention, listKeySet, rotateKeySet } from '../../src/keys/rotation.ts';
import { keyMaterial, testConfig } from './helpers.ts';

const created = Date.UTC(2026, 0, 1);
const rotatedAt = Date.UTC(2026, 1, 1);
const retention = keyRetention(testConfig());
const original = generateKeySet({ signingAlgorithm: 'ES256', now: created });
const rotated = rotateKeySet(original, { now: rotatedAt, signingAlgorithm: 'EdDSA' });
const listing = listKeySet(rotated, retention);

describe('key report', () => {
  it('prints one row per key with use, algorithm, status and creation time', () => {
    const table = formatKeyTable(listing, rotatedAt);
    const lines = table.split('\n');
    assert.match(lines[0] ?? '', /^KID\s+USE\s+ALG\s+STATUS\s+CREATED$/);
    assert.equal(lines.length, 1 + 4);
    const oldSigning = original.signingKeys[0]?.kid ?? '';
    const row = lines.find((line) => line.startsWith(oldSigning)) ?? '';
    assert.match(row, /\bsig\b.*\bES256\b.*retired since 2026-02-01T00:00:00Z, prunable after /);
    assert.ok(row.endsWith(formatKeyTime(created)));
    assert.equal(lines.filter((line) => /\bcurrent\b/.test(line)).length, 2);
    assert.ok(lines.some((line) => /\benc\b.*\bA256GCM\b/.test(line)));
  });

  it('says when a retired key is prunable now', () => {
    const signing = listing.find((key) => key.kid === original.signingKeys[0]?.kid);
    const table = formatKeyTable(listing, signing?.prunableAt ?? 0);
    assert.match(table, /prunable now/);
  });

  it('never contains key material, as a table or as JSON', () => {
    const outputs = [formatKeyTable(listing, rotatedAt), JSON.stringify(keyListingJson(listing))];
    for (const output of outputs) {
      for (const secret of keyMaterial(rotated)) assert.ok(!output.includes(secret));
    }
  });

  it('gives ISO times and the prune time in JSON', () => {
    const json = keyListingJson(listing);
    const retiredSealing = json.find((key) => key.kid === original.sealingKeys[0]?.kid);
    assert.equal(retiredSealing?.retiredAt, formatKeyTime(rotatedAt));
    assert.equal(retiredSealing?.prunableAt, formatKeyTime(rotatedAt + retention.sealingSeconds * 1000));
    assert.equal(nextPrunableAt(listing), rotatedAt + retention.signingSeconds * 1000);
    assert.equal(nextPrunableAt(listKeySet(original, retention)), undefined);
  });
});
