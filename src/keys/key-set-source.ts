import { rename, stat, unlink, writeFile } from 'node:fs/promises';
import { readOperatorFile } from '../config/operator-file.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import type { Store } from '../store/store.ts';
import { generateKeySet, KeySetError, parseKeySet, serializeKeySet, type KeySetFile } from './key-set.ts';
import { GatehouseError } from '../errors/internal-errors.ts';
import { keySetRecord, keysUpdateLock } from './key-set-record.ts';
import { acquireNamedLock, createRecord, writeRecord } from '../store/record-access.ts';

/**
 * Where the key set lives: a record in the store (`keys.source: store`, the default) or a file written by
 * `gatehouse init` (`keys.source: file`).
 *
 * Store record: declared in key-set-record.ts (namespace `keys`, key `key-set`, no TTL, value = the KeySetFile JSON).
 * One record rather than one per key so that replicas starting together agree through a single `setIfAbsent`, and a
 * rotation is one write that no reader can see half done.
 *
 * The sealing keys sit in that record unencrypted. For the embedded SQLite store that is the same trust boundary as a
 * key file beside the database. With a shared Redis, anyone who can read Redis can open sealed upstream tokens:
 * protect Redis (password, TLS, private network) or use `keys.source: file` so keys never enter it.
 */
/** The namespace, for tests that read the store directly. */
export const KEYS_NAMESPACE = keySetRecord.namespace;
export const KEY_SET_RECORD = 'key-set';
/** Serialises rotate/prune/revoke across replicas and CLI runs, so two rotations cannot each retire the other's new key. */
const UPDATE_LOCK_TTL_MS = 30_000;

export type KeysConfig = GatehouseConfig['keys'];

/** Another rotate/prune/revoke holds the update lock. Retrying shortly is the fix; nothing was changed. */
export class KeyUpdateInProgressError extends GatehouseError {
  constructor() {
    super('GH_KEY_UPDATE_BUSY', 'another key rotation, prune or revocation is in progress; try again shortly');
    this.name = 'KeyUpdateInProgressError';
  }
}

export interface KeySetSource {
  readonly description: string;
  /**
   * The key set; from the store it is created on first use — from `held`, the set this process already holds, when
   * it has one: a store that lost its record (restarted empty, flushed) gets the keys every replica is using back,
   * not a new set that each replica would adopt at its next reload, up to a minute apart, refusing every token signed
   * and opening nothing sealed since the restart.
   */
  load(held?: KeySetFile): Promise<KeySetFile>;
  /** The key set if there is one yet, creating nothing (for `keys list`). */
  peek(): Promise<KeySetFile | undefined>;
  /** Applies `change` to the latest key set and saves the result. */
  update(change: (keySet: KeySetFile) => KeySetFile): Promise<KeySetFile>;
}

export interface FileAccess {
  readFile(path: string): Promise<string>;
  /** Replaces the file atomically, readable by the owner only. */
  writeFile(path: string, text: string): Promise<void>;
  /**
   * Holds the file's update lock until the returned function is called; undefined while another command holds it.
   * Absent in a test's in-memory files.
   */
  lock?(path: string): Promise<(() => Promise<void>) | undefined>;
}

export const nodeFileAccess: FileAccess = {
  readFile: (path) => readOperatorFile(path),
  async writeFile(path, text) {
    // Write beside, then rename: a reader (another replica, a crash mid-write) sees the old set or the new, never half.
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, text, { mode: 0o600 });
    await rename(temporary, path);
  },
  lock: lockFile,
};

/**
 * A lock file beside the key file (`<file>.lock`, made with O_EXCL), the file source's counterpart of the store's
 * `keys:update` lock: a `keys rotate` from cron read the file, a `keys revoke` wrote it, and the rotation's write put
 * the revoked key back. One left by a command that died is taken over once older than the store lock's TTL.
 */
async function lockFile(path: string): Promise<(() => Promise<void>) | undefined> {
  const lockPath = `${path}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockPath, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return () => unlink(lockPath).catch(() => undefined);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new KeySetError(`${lockPath}: cannot be created (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
      const held = await stat(lockPath).catch(() => undefined);
      if (held !== undefined && Date.now() - held.mtimeMs < UPDATE_LOCK_TTL_MS) return undefined;
      await unlink(lockPath).catch(() => undefined);
    }
  }
  return undefined;
}

export function storeKeySetSource(options: { store: Store; keysConfig: KeysConfig; clock: Clock; random?: Random }): KeySetSource {
  const { store, keysConfig, clock, random } = options;
  const description = `store record ${KEYS_NAMESPACE}/${KEY_SET_RECORD}`;
  const read = async (): Promise<KeySetFile | undefined> => {
    // Not readRecord: parseKeySet validates against the same schema and names the problem as GH_KEY_SET_INVALID.
    const value = await store.get<unknown>(KEYS_NAMESPACE, KEY_SET_RECORD);
    return value === undefined ? undefined : parseKeySet(value, description);
  };
  const load = async (held?: KeySetFile): Promise<KeySetFile> => {
    const existing = await read();
    if (existing) return existing;
    const fresh = held ?? generateKeySet({ signingAlgorithm: keysConfig.signingAlgorithm, now: clock.now(), random });
    // Replicas starting together each generate a set (or put back theirs); only the first write wins and everyone reads that one.
    if (await createRecord(store, keySetRecord, KEY_SET_RECORD, fresh)) return fresh;
    const winner = await read();
    if (!winner) throw new KeySetError(`${description}: vanished while being created`);
    return winner;
  };
  return {
    description,
    load,
    peek: read,
    async update(change) {
      const release = await acquireNamedLock(store, keysUpdateLock, UPDATE_LOCK_TTL_MS);
      if (!release) throw new KeyUpdateInProgressError();
      try {
        const next = parseKeySet(change(await load()), description);
        await writeRecord(store, keySetRecord, KEY_SET_RECORD, next);
        return next;
      } finally {
        await release();
      }
    },
  };
}

export function fileKeySetSource(options: { path: string; files?: FileAccess }): KeySetSource {
  const { path } = options;
  const files = options.files ?? nodeFileAccess;
  const description = `keys.file "${path}"`;
  const load = async (): Promise<KeySetFile> => {
    let text: string;
    try {
      text = await files.readFile(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new KeySetError(`${description}: cannot be read${code ? ` (${code})` : ''}`, { cause: error });
    }
    return parseKeySet(text, description);
  };
  return {
    description,
    load,
    peek: load,
    async update(change) {
      const release = files.lock === undefined ? async () => {} : await files.lock(path);
      if (!release) throw new KeyUpdateInProgressError();
      try {
        const next = parseKeySet(change(await load()), description);
        await files.writeFile(path, serializeKeySet(next));
        return next;
      } finally {
        await release();
      }
    },
  };
}

/** The source `keys` config points at. */
export function keySetSourceFor(options: {
  store: Store;
  keysConfig: KeysConfig;
  clock: Clock;
  random?: Random;
  files?: FileAccess;
}): KeySetSource {
  if (options.keysConfig.source === 'store') return storeKeySetSource(options);
  if (!options.keysConfig.file) throw new KeySetError('keys.file: required when keys.source is "file"');
  return fileKeySetSource({ path: options.keysConfig.file, files: options.files });
}
