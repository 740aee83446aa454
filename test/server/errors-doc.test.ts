import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { errorCatalogue } from '../../src/server/errors.ts';

/** docs/errors.md must list exactly the catalogue's codes, with the same status and meaning (STYLE.md §11). */

interface DocRow {
  status: number;
  description: string;
}

async function documentedCodes(): Promise<Map<string, DocRow>> {
  const text = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map<string, DocRow>();
  for (const line of text.split('\n')) {
    const match = /^\| `([a-z_]+)` \| (\d{3}) \| (.+) \|$/.exec(line);
    if (!match) continue;
    const [, code, status, description] = match as unknown as [string, string, string, string];
    assert.ok(!rows.has(code), `docs/errors.md lists ${code} twice`);
    rows.set(code, { status: Number(status), description: description.replaceAll('\\|', '|') });
  }
  return rows;
}

describe('docs/errors.md', () => {
  it('lists every code of the catalogue and nothing else', async () => {
    const documented = await documentedCodes();
    assert.deepEqual([...documented.keys()].sort(), Object.keys(errorCatalogue).sort());
  });

  it('gives each code the catalogue status and description', async () => {
    const documented = await documentedCodes();
    for (const [code, entry] of Object.entries(errorCatalogue)) {
      assert.deepEqual(documented.get(code), { status: entry.status, description: entry.description }, code);
    }
  });
});
