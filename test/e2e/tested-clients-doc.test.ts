import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { CLIENT_MATRIX, MATRIX_BEGIN, MATRIX_END, renderClientMatrix } from './support/client-matrix.ts';
import { EXPECTED_CONFORMANCE_FAILURES } from './support/conformance-expectations.ts';

/**
 * docs/tested-clients.md is kept true by the end-to-end suite: each row of its client table names an end-to-end test
 * file that exists, every end-to-end test file is named by a row, and the conformance expected failures it lists are
 * those the conformance test tolerates. The foreign-clients table is exactly what test/e2e/support/client-matrix.ts
 * renders, the same rows the client tests read to know what to run and assert.
 */
const root = resolve(import.meta.dirname, '..', '..');
const page = readFileSync(join(root, 'docs', 'tested-clients.md'), 'utf8');

/** The rows of the first table after `## <heading>`, as cells. */
function tableRows(heading: string): string[][] {
  const section = page.split(`\n## ${heading}\n`)[1]?.split('\n## ')[0] ?? '';
  const lines = section.split('\n').filter((line) => line.startsWith('|'));
  return lines.slice(2).map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));
}

describe('docs/tested-clients.md', () => {
  const rows = tableRows('Clients');

  it('has a row per client, each naming the test that proves it', () => {
    assert.ok(rows.length >= 5, `rows: ${rows.length}`);
    for (const row of rows) {
      const proof = row.at(-1) ?? '';
      const match = /^`(test\/e2e\/[\w.-]+\.test\.ts)`$/.exec(proof);
      assert.ok(match?.[1], `row "${row[0]}" must name one test/e2e/*.test.ts file, got "${proof}"`);
      assert.ok(existsSync(join(root, match[1])), `${match[1]} (row "${row[0]}") does not exist`);
    }
  });

  it('names every end-to-end test file', () => {
    const named = new Set([...rows.map((row) => (row.at(-1) ?? '').replaceAll('`', '')), ...CLIENT_MATRIX.map((row) => row.proof)]);
    const files = readdirSync(join(root, 'test', 'e2e')).filter((file) => file.endsWith('.test.ts') && file !== 'tested-clients-doc.test.ts');
    assert.ok(files.length > 0);
    for (const file of files) assert.ok(named.has(`test/e2e/${file}`), `test/e2e/${file} is not in the table`);
  });

  it('has the foreign-clients table generated from the client matrix (regenerate: node test/e2e/support/client-matrix.ts)', () => {
    const begin = page.indexOf(MATRIX_BEGIN);
    const end = page.indexOf(MATRIX_END);
    assert.ok(begin >= 0 && end > begin, 'the generated section is on the page');
    assert.equal(page.slice(begin, end + MATRIX_END.length), renderClientMatrix());
    for (const row of CLIENT_MATRIX) assert.ok(existsSync(join(root, row.proof)), `${row.proof} (matrix row ${row.key}) does not exist`);
  });

  it('lists the conformance expected failures the conformance test tolerates', () => {
    const expected = Object.keys(EXPECTED_CONFORMANCE_FAILURES);
    if (expected.length === 0) assert.match(page, /Expected failures: none\./);
    for (const id of expected) assert.ok(page.includes(`\`${id}\``), `${id} is tolerated by the test but not explained in the page`);
  });
});
