import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { editDistance, nearest } from '../../src/config/nearest.ts';

describe('nearest', () => {
  it('counts inserts, deletes, substitutions and swapped neighbours as one edit each', () => {
    assert.equal(editDistance('servr', 'server'), 1);
    assert.equal(editDistance('sever', 'server'), 1);
    assert.equal(editDistance('oicd', 'oidc'), 1);
    assert.equal(editDistance('Server', 'server'), 0);
    assert.equal(editDistance('abc', 'xyz'), 3);
  });

  it('suggests only plausible typos', () => {
    assert.equal(nearest('servr', ['mode', 'server', 'store']), 'server');
    assert.equal(nearest('routs', ['routes', 'broker']), 'routes');
    assert.equal(nearest('zzzzzz', ['mode', 'server']), undefined);
    assert.equal(nearest('x', []), undefined);
  });

  it('completes an unambiguous abbreviation', () => {
    assert.equal(nearest('prod', ['demo', 'production']), 'production');
    assert.equal(nearest('re', ['redis', 'refresh']), undefined);
  });
});
