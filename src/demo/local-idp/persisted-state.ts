import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { JWK } from 'jose';
import type { AdapterPayload } from 'oidc-provider';

/** One record of the local identity provider's storage, keyed `<model>:<id>`. */
export interface StoredRecord {
  payload: AdapterPayload;
  /** Epoch ms. */
  expiresAt?: number;
}

/**
 * DEVELOPMENT ONLY — what the local identity provider keeps across demo restarts when given a file: its signing key
 * and its records (the sessions, grants and refresh tokens behind the gateway's upstream sessions). Without them each
 * start made a new key and forgot every session: the demo directory API refused the downstream tokens the gateway had
 * cached (signed with the old key) for up to an hour after a restart, and every user's upstream session was gone.
 * A JSON file, mode 0600 (it holds the demo IdP's private key and refresh tokens), written whole through a rename
 * after the changes of one turn of the event loop; an unreadable file is started over.
 */
export interface PersistedState {
  signingKey: JWK | undefined;
  /** The keys that sign its session cookie: new ones would leave every saved session out of a browser's reach. */
  cookieKeys: string[] | undefined;
  records: Map<string, StoredRecord>;
  /** Writes the state (the key, the records as they are) after the current turn. */
  changed(): void;
  /** Writes a change still waiting now (a stopping IdP: its process may exit before the next turn). */
  flush(): void;
}

interface StateFile {
  version: 1;
  signingKey: JWK;
  cookieKeys?: string[];
  records: Array<[string, StoredRecord]>;
}

/**
 * `onError`: a write that failed (a full disk, a removed directory), or a file that could not be read back (started
 * over); the IdP goes on in memory. `now`: the clock records expire on — expired ones (a used code, a rotated refresh
 * token, a client assertion's jti) are neither loaded nor written again, so the file holds what is live.
 */
export function openPersistedState(file: string, now: () => number, onError: (error: unknown) => void): PersistedState {
  const saved = readState(file, onError);
  const live = (entry: [string, StoredRecord]) => entry[1].expiresAt === undefined || entry[1].expiresAt > now();
  let pending: NodeJS.Immediate | undefined;
  const write = (): void => {
    pending = undefined;
    if (state.signingKey === undefined) return;
    const contents: StateFile = { version: 1, signingKey: state.signingKey, ...(state.cookieKeys === undefined ? {} : { cookieKeys: state.cookieKeys }), records: [...state.records].filter(live) };
    const temporary = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, JSON.stringify(contents), { mode: 0o600 });
      renameSync(temporary, file);
    } catch (error) {
      onError(error);
    }
  };
  const state: PersistedState = {
    signingKey: saved?.signingKey,
    cookieKeys: saved?.cookieKeys,
    records: new Map((saved?.records ?? []).filter(live)),
    changed() {
      pending ??= setImmediate(write).unref();
    },
    flush() {
      if (pending === undefined) return;
      clearImmediate(pending);
      write();
    },
  };
  // What expired while the IdP was stopped leaves the file too.
  if (saved !== undefined && state.records.size < saved.records.length) state.changed();
  return state;
}

function readState(file: string, onError: (error: unknown) => void): StateFile | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // None yet: the first start.
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as Partial<StateFile>;
    const cookieKeysValid = parsed.cookieKeys === undefined || (Array.isArray(parsed.cookieKeys) && parsed.cookieKeys.every((key) => typeof key === 'string'));
    if (parsed.version === 1 && typeof parsed.signingKey?.d === 'string' && Array.isArray(parsed.records) && cookieKeysValid) return parsed as StateFile;
    onError(new Error(`${file} is not a state file of this version; starting over`));
  } catch (error) {
    onError(error);
  }
  return undefined;
}
