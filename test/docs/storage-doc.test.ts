import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { renderStorageDoc, STORAGE_DOC_PATH } from '../../scripts/gen-storage-docs.ts';
import { allDefinitions } from '../../src/records/catalogue.ts';

/**
 * docs/storage.md is generated from the records catalogue (src/records/catalogue.ts), and code reaches the store
 * through those declarations (src/store/record-access.ts). What is left to check: the committed page is current, the
 * catalogue has no duplicates, and no file of src/ calls the Store with a string of its own.
 */

const root = join(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The files that implement the Store or its accessors; everything else goes through a declaration. */
const STORE_IMPLEMENTATION = /^src\/(store\/(redis|sqlite|store-health|local-pubsub|record-access)|observability\/instrumented-store)/;

/**
 * Direct calls that stay, each for a reason: the key set is validated by parseKeySet (GH_KEY_SET_INVALID, naming the
 * problem for an operator); single-flight takes its lock name from a LockDefinition (lockName) through a parameter.
 */
const ALLOWED_DIRECT_CALLS = ['src/keys/key-set-source.ts: store.get<unknown>(', 'src/broker/single-flight.ts: store.acquireLock('];

describe('docs/storage.md', () => {
  it('is what scripts/gen-storage-docs.ts generates from the records catalogue', () => {
    const committed = readFileSync(STORAGE_DOC_PATH, 'utf8');
    assert.ok(committed === renderStorageDoc(committed), 'docs/storage.md is out of date — run: node scripts/gen-storage-docs.ts');
  });

  it('declares each namespace, counter, lock and channel once', () => {
    const names = allDefinitions.map((definition) => `${definition.kind}:${'namespace' in definition ? definition.namespace : definition.name}`);
    assert.deepEqual(names.filter((name, index) => names.indexOf(name) !== index), []);
  });

  it('no file of src/ calls the Store directly: names and values go through a declaration and its accessors', () => {
    const call = /\bstore\s*\.\s*(get|set|setIfAbsent|consume|delete|findByIndex|addIndexes|deleteByIndex|list|increment|acquireLock|publish|subscribe)\s*(<[^>]*>)?\(/g;
    const offenders = sourceFiles(join(root, 'src'))
      .map((file) => relative(root, file).split('\\').join('/'))
      .filter((file) => !STORE_IMPLEMENTATION.test(file))
      .flatMap((file) => [...readFileSync(join(root, file), 'utf8').matchAll(call)].map((match) => `${file}: ${match[0]}`))
      .filter((use) => !ALLOWED_DIRECT_CALLS.includes(use));
    assert.deepEqual(offenders, [], 'use a declaration from src/records/ and the accessors of src/store/record-access.ts');
  });
});
