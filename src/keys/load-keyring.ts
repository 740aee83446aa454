import type { Logger } from 'pino';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import type { Store, Unsubscribe } from '../store/store.ts';
import { currentKey, type KeySetFile } from './key-set.ts';
import { keyringFromKeySet } from './key-set-keyring.ts';
import { keySetSourceFor, nodeFileAccess, type KeysConfig } from './key-set-source.ts';
import { subscribeChannel } from '../store/record-access.ts';
import { keysChangedChannel } from './key-set-record.ts';
import type { Keyring } from './keyring.ts';

export interface ReloadingKeyring extends Keyring {
  /** Reads the key set again (store record or file) and swaps it in; concurrent calls share one read. */
  reload(): Promise<void>;
  /**
   * Calls `listener` after a reload that changed the keys. Anything that copied key material at construction
   * (oidc-provider takes its `jwks` once) must rebuild itself here, or it keeps signing with a key that prune will
   * remove. Returns a function that removes the listener.
   */
  onChange(listener: () => void): () => void;
  /** Stops the reload timer and the `keys-changed` subscription. */
  close(): Promise<void>;
}

export interface LoadKeyringOptions {
  store: Store;
  keysConfig: KeysConfig;
  clock: Clock;
  logger: Logger;
  /** Reads the key file (`keys.source: file`); tests inject one. */
  fileReader?: (path: string) => Promise<string>;
  random?: Random;
  /**
   * Fallback reload period. `keys-changed` is best effort, and the SQLite store's channel does not cross processes
   * (a `gatehouse keys rotate` run beside a server), so every keyring also re-reads on this timer. 0 disables it.
   */
  reloadIntervalMs?: number;
  /** Called after each reload (with the error if it failed); lets tests wait for a reload instead of sleeping. */
  onReload?: (error?: unknown) => void;
}

const DEFAULT_RELOAD_INTERVAL_MS = 60_000;

/** Key ids only: ids are public (they are in every JWT header), material never goes near a log line. */
function describe(keySet: KeySetFile): { signingKid: string; sealingKid: string; signingKeys: number; sealingKeys: number } {
  return {
    signingKid: currentKey(keySet.signingKeys).kid,
    sealingKid: currentKey(keySet.sealingKeys).kid,
    signingKeys: keySet.signingKeys.length,
    sealingKeys: keySet.sealingKeys.length,
  };
}

/**
 * Loads the gateway's keyring from the configured source and keeps it current across rotations by other replicas
 * or the CLI. A key set that fails to load at start is fatal (the error names the problem); a failed reload later
 * keeps the keys already held, since dropping them would fail every request.
 */
export async function loadKeyring(options: LoadKeyringOptions): Promise<ReloadingKeyring> {
  const { store, logger, onReload } = options;
  const source = keySetSourceFor({
    store,
    keysConfig: options.keysConfig,
    clock: options.clock,
    random: options.random,
    files: options.fileReader ? { ...nodeFileAccess, readFile: options.fileReader } : nodeFileAccess,
  });

  // Subscribe before the first read: a rotation committed after it is announced to us, one before it is in what we read.
  let loaded = false;
  let missed = false;
  let unsubscribe: Unsubscribe | undefined = await subscribeChannel(store, keysChangedChannel, () => {
    if (loaded) void reload();
    else missed = true;
  });

  let keySet: KeySetFile;
  try {
    keySet = await source.load();
  } catch (error) {
    await unsubscribe();
    throw error;
  }
  let keyring = keyringFromKeySet(keySet);
  logger.info({ keys: describe(keySet), source: source.description }, 'keys loaded');

  const listeners = new Set<() => void>();
  let inFlight: Promise<void> | undefined;
  const reload = (): Promise<void> => {
    inFlight ??= (async () => {
      try {
        // Read first: a store that lost the record (restarted empty, flushed) is given back the keys held here, and
        // the operator is told, rather than a new set being made that signs out everyone who signed in since.
        const stored = await source.peek();
        if (stored === undefined) logger.warn({ source: source.description }, 'the key set is missing from the store (restarted empty or flushed?); putting back the keys this replica holds');
        const next = stored ?? (await source.load(keySet));
        if (JSON.stringify(next) !== JSON.stringify(keySet)) {
          keyring = keyringFromKeySet(next);
          keySet = next;
          logger.info({ keys: describe(next) }, 'keys reloaded');
          for (const listener of listeners) notify(listener);
        }
        onReload?.();
      } catch (error) {
        logger.warn({ error: error instanceof Error ? error.message : 'unknown error' }, 'keys reload failed; keeping current keys');
        onReload?.(error);
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };
  loaded = true;
  // A change announced while the first read was running may not be in what it read.
  if (missed) void reload();

  // A listener that throws must not stop the others or turn a good reload into a failed one.
  const notify = (listener: () => void): void => {
    try {
      listener();
    } catch (error) {
      logger.error({ error: error instanceof Error ? error.message : 'unknown error' }, 'keys change listener failed');
    }
  };

  const interval = options.reloadIntervalMs ?? DEFAULT_RELOAD_INTERVAL_MS;
  const timer = interval > 0 ? setInterval(() => void reload(), interval) : undefined;
  // The timer is only a fallback: it must not keep a process (a CLI command, a test) alive on its own.
  timer?.unref();

  return {
    currentSigningKey: () => keyring.currentSigningKey(),
    signingKeys: () => keyring.signingKeys(),
    publicJwks: () => keyring.publicJwks(),
    privateJwks: () => keyring.privateJwks(),
    seal: (plaintext, context) => keyring.seal(plaintext, context),
    unseal: (sealed, context) => keyring.unseal(sealed, context),
    reload,
    onChange(listener) {
      const own = (): void => listener();
      listeners.add(own);
      return () => listeners.delete(own);
    },
    async close() {
      if (timer) clearInterval(timer);
      const stop = unsubscribe;
      unsubscribe = undefined;
      await stop?.();
      await inFlight;
      listeners.clear();
    },
  };
}
