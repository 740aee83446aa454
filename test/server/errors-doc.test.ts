import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { errorCatalogue, jsonRpcCodes } from '../../src/errors/protocol-error.ts';
import { internalErrors } from '../../src/errors/internal-errors.ts';

/** docs/errors.md must list exactly the catalogue's codes, with the same status and meaning (STYLE.md §11). */

interface DocRow {
  status: number;
  jsonRpc: number;
  description: string;
}

async function documentedCodes(): Promise<Map<string, DocRow>> {
  const text = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map<string, DocRow>();
  for (const line of text.split('\n')) {
    const match = /^\| `([a-z_]+)` \| (\d{3}) \| (-\d+) \| (.+) \|$/.exec(line);
    if (!match) continue;
    const [, code, status, jsonRpc, description] = match as unknown as [string, string, string, string, string];
    assert.ok(!rows.has(code), `docs/errors.md lists ${code} twice`);
    rows.set(code, { status: Number(status), jsonRpc: Number(jsonRpc), description: description.replaceAll('\\|', '|') });
  }
  return rows;
}

describe('docs/errors.md', () => {
  it('lists every code of the catalogue and nothing else', async () => {
    const documented = await documentedCodes();
    assert.deepEqual([...documented.keys()].sort(), Object.keys(errorCatalogue).sort());
  });

  it('gives each code the catalogue status, JSON-RPC code and description', async () => {
    const documented = await documentedCodes();
    for (const [code, entry] of Object.entries(errorCatalogue)) {
      assert.deepEqual(documented.get(code), { status: entry.status, jsonRpc: entry.jsonRpc, description: entry.description }, code);
    }
  });

  it('pairs each JSON-RPC code with a status that means the same thing', () => {
    for (const [code, entry] of Object.entries(errorCatalogue)) {
      // Gatehouse never knows a method is unknown: -32601 would send a client looking for a typo that is not there.
      assert.notEqual(entry.jsonRpc, -32601, code);
      if (entry.jsonRpc === jsonRpcCodes.invalidRequest) assert.equal(entry.status, 400, code);
      if (entry.jsonRpc === jsonRpcCodes.internalError) assert.equal(entry.status, 500, code);
    }
  });
});

describe('docs/errors.md internal error codes', () => {
  it('lists every internal code with its exit code and meaning, and nothing else', async () => {
    const text = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const documented: Record<string, { exitCode: number; meaning: string }> = {};
    for (const match of text.matchAll(/^\| `(GH_[A-Z_]+)` \| (\d) \| (.+) \|$/gm)) {
      documented[match[1] ?? ''] = { exitCode: Number(match[2]), meaning: match[3] ?? '' };
    }
    assert.deepEqual(documented, internalErrors);
  });
});
