import type { GatehouseConfig } from '../config/schema.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import type { Store } from '../store/store.ts';
import { currentKey, generateSealingKey, generateSigningKey, type KeySetFile } from './key-set.ts';
import { keySetSourceFor, type FileAccess } from './key-set-source.ts';
import { publishMessage } from '../store/record-access.ts';
import { keysChangedChannel } from './key-set-record.ts';
import type { SigningAlgorithm } from './keyring.ts';
import { GatehouseError } from '../errors/internal-errors.ts';

/**
 * Key rotation without downtime. `rotate` retires the current signing and sealing keys (they stay, for verifying and
 * unsealing what they already protect) and adds new current ones. `prune` removes a retired key only once nothing it
 * protects can still be valid, so no client sees a token or grant break because of key housekeeping.
 *
 * There is deliberately no `prune --force`: removing a sealing key early destroys every upstream token sealed with it
 * (users must sign in again, with no way back), and removing a signing key early breaks live sessions. A suspected key
 * compromise has its own verb instead, `revoke`, which names one key by id: whoever holds a signing key can mint
 * access tokens every route accepts (any subject, any grant id) until the key leaves the set, and a rotation alone
 * leaves it there for the whole retention window.
 */

/**
 * oidc-provider's default ID token lifetime. The authorization server does not override it; if it ever does, this
 * must follow (or move into the config) so that prune keeps signing keys long enough.
 */
export const ID_TOKEN_TTL_SECONDS = 3_600;

/**
 * Added to every window: replicas keep signing/sealing with a retired key until they reload (the `keys-changed`
 * message, or the 60 s fallback timer), and verifiers allow some clock skew.
 */
export const PRUNE_MARGIN_SECONDS = 300;

export interface KeyRetention {
  /** A retired signing key may go this long after retirement: the longest signed-token lifetime plus the margin. */
  signingSeconds: number;
  /** A retired sealing key may go this long after retirement: the longest sealed-record lifetime plus the margin. */
  sealingSeconds: number;
}

/** The windows prune waits for, from the lifetimes in the config. */
export function keyRetention(config: GatehouseConfig): KeyRetention {
  const signedLifetimes = [
    config.authorization.accessTokenTtlSeconds,
    ID_TOKEN_TTL_SECONDS,
    ...config.routes.map((route) => route.identity.assertionTtlSeconds),
  ];
  return {
    signingSeconds: Math.max(...signedLifetimes) + PRUNE_MARGIN_SECONDS,
    // Sealed upstream tokens end with the refresh token's absolute lifetime at the latest; sealed consent cookies
    // with the remembered-approval period. Whichever is longer bounds everything a sealing key protects.
    sealingSeconds:
      Math.max(config.authorization.refreshTokenAbsoluteSeconds, config.authorization.consentRememberDays * 86_400) +
      PRUNE_MARGIN_SECONDS,
  };
}

export interface KeyListing {
  kid: string;
  use: 'sig' | 'enc';
  alg: string;
  status: 'current' | 'retired';
  createdAt: number;
  retiredAt?: number;
  /** When prune may remove this retired key. */
  prunableAt?: number;
}

export function listKeySet(keySet: KeySetFile, retention: KeyRetention): KeyListing[] {
  const entry = (
    key: { kid: string; alg: string; createdAt: number; retiredAt?: number },
    use: 'sig' | 'enc',
    windowSeconds: number,
  ): KeyListing =>
    key.retiredAt === undefined
      ? { kid: key.kid, use, alg: key.alg, status: 'current', createdAt: key.createdAt }
      : {
          kid: key.kid,
          use,
          alg: key.alg,
          status: 'retired',
          createdAt: key.createdAt,
          retiredAt: key.retiredAt,
          prunableAt: key.retiredAt + windowSeconds * 1000,
        };
  return [
    ...keySet.signingKeys.map((key) => entry(key, 'sig', retention.signingSeconds)),
    ...keySet.sealingKeys.map((key) => entry(key, 'enc', retention.sealingSeconds)),
  ];
}

/** Retires the current keys at `now` and adds new current ones. */
export function rotateKeySet(
  keySet: KeySetFile,
  options: { now: number; signingAlgorithm: SigningAlgorithm; random?: Random },
): KeySetFile {
  const retire = <T extends { retiredAt?: number }>(key: T): T => (key.retiredAt === undefined ? { ...key, retiredAt: options.now } : key);
  return {
    version: 1,
    signingKeys: [generateSigningKey(options), ...keySet.signingKeys.map(retire)],
    sealingKeys: [generateSealingKey(options), ...keySet.sealingKeys.map(retire)],
  };
}

/** Drops retired keys whose window has passed; the current keys are never candidates. */
export function pruneKeySet(keySet: KeySetFile, options: { now: number; retention: KeyRetention }): KeySetFile {
  const keep = (windowSeconds: number) => (key: { retiredAt?: number }) =>
    key.retiredAt === undefined || options.now < key.retiredAt + windowSeconds * 1000;
  return {
    version: 1,
    signingKeys: keySet.signingKeys.filter(keep(options.retention.signingSeconds)),
    sealingKeys: keySet.sealingKeys.filter(keep(options.retention.sealingSeconds)),
  };
}

/** The key id names no key in the set. Nothing was changed. */
export class UnknownKeyError extends GatehouseError {
  constructor(kid: string) {
    super('GH_NOT_FOUND', `no key has the id "${kid}" (\`gatehouse keys list\` shows the ids)`);
    this.name = 'UnknownKeyError';
  }
}

/**
 * Takes the key `kid` out of the set at once, whatever its window. A current key is replaced in the same write by a new
 * current key of its kind (the other kind is left alone: a leaked signing key says nothing of the sealing key), so
 * the set is never without one and no replica ever loads a set in between.
 */
export function revokeKeyFromSet(
  keySet: KeySetFile,
  options: { kid: string; now: number; signingAlgorithm: SigningAlgorithm; random?: Random },
): KeySetFile {
  const { kid } = options;
  const named = (key: { kid: string }) => key.kid === kid;
  if (!keySet.signingKeys.some(named) && !keySet.sealingKeys.some(named)) throw new UnknownKeyError(kid);
  const replaced = <T extends { kid: string; retiredAt?: number }>(keys: T[], fresh: () => T): T[] => {
    const revoked = keys.find(named);
    if (revoked === undefined) return keys;
    const kept = keys.filter((key) => !named(key));
    return revoked.retiredAt === undefined ? [fresh(), ...kept] : kept;
  };
  return {
    version: 1,
    signingKeys: replaced(keySet.signingKeys, () => generateSigningKey(options)),
    sealingKeys: replaced(keySet.sealingKeys, () => generateSealingKey(options)),
  };
}

export interface KeyAdminOptions {
  store: Store;
  config: GatehouseConfig;
  clock: Clock;
  random?: Random;
  /** File access for `keys.source: file`; tests inject one. */
  files?: FileAccess;
}

function sourceFor(options: KeyAdminOptions) {
  return keySetSourceFor({ ...options, keysConfig: options.config.keys });
}

/** The keys and their status; empty when the store has no key set yet (listing never creates one). */
export async function listKeys(options: KeyAdminOptions): Promise<KeyListing[]> {
  const keySet = await sourceFor(options).peek();
  return keySet ? listKeySet(keySet, keyRetention(options.config)) : [];
}

/** Rotates both key kinds and tells every replica to reload. Returns the new listing. */
export async function rotateKeys(options: KeyAdminOptions): Promise<{ signingKid: string; sealingKid: string; keys: KeyListing[] }> {
  const next = await sourceFor(options).update((keySet) =>
    rotateKeySet(keySet, { now: options.clock.now(), signingAlgorithm: options.config.keys.signingAlgorithm, random: options.random }),
  );
  await publishMessage(options.store, keysChangedChannel, 'rotate');
  return {
    signingKid: currentKey(next.signingKeys).kid,
    sealingKid: currentKey(next.sealingKeys).kid,
    keys: listKeySet(next, keyRetention(options.config)),
  };
}

/**
 * Revokes the key `kid` (revokeKeyFromSet) and tells every replica to reload: with Redis they drop it at once; with
 * SQLite or a key file at their next reload (SIGHUP, or within a minute). Returns the revoked key's listing, the keys
 * made to replace it (when it was current), and the new listing.
 */
export async function revokeKey(
  options: KeyAdminOptions,
  kid: string,
): Promise<{ revoked: KeyListing[]; replacements: KeyListing[]; keys: KeyListing[] }> {
  const retention = keyRetention(options.config);
  const source = sourceFor(options);
  // Read first: an unknown id on a store without a key set must not create one (as prune, list).
  if ((await source.peek()) === undefined) throw new UnknownKeyError(kid);
  // The set the change was made to, read under the update's lock: a rotation just before must not count as replacements.
  let changed: KeySetFile | undefined;
  const next = await source.update((keySet) => {
    changed = keySet;
    return revokeKeyFromSet(keySet, { kid, now: options.clock.now(), signingAlgorithm: options.config.keys.signingAlgorithm, random: options.random });
  });
  await publishMessage(options.store, keysChangedChannel, 'revoke');
  const before = listKeySet(changed ?? next, retention);
  const keys = listKeySet(next, retention);
  const id = (key: KeyListing) => `${key.use}:${key.kid}`;
  const beforeIds = new Set(before.map(id));
  const afterIds = new Set(keys.map(id));
  return {
    revoked: before.filter((key) => key.kid === kid && !afterIds.has(id(key))),
    replacements: keys.filter((key) => !beforeIds.has(id(key))),
    keys,
  };
}

/**
 * Removes the retired keys whose window has passed; the rest are listed with the time they become prunable.
 * `asOf`: prune what was due then, not at the write — what an operator was shown and confirmed (`keys prune` asks, and
 * an answer may take minutes); a key that came due since waits for a run that names it.
 */
export async function pruneKeys(options: KeyAdminOptions & { asOf?: number }): Promise<{ removed: KeyListing[]; kept: KeyListing[] }> {
  const retention = keyRetention(options.config);
  const source = sourceFor(options);
  // A store without a key set has nothing to prune, and a set made here (prune runs from cron) would be one no
  // running replica holds: after the store lost its data, they put back theirs at their next reload instead.
  const held = await source.peek();
  if (held === undefined) return { removed: [], kept: [] };
  const before = listKeySet(held, retention);
  const now = options.asOf ?? options.clock.now();
  const due = before.filter((key) => key.prunableAt !== undefined && now >= key.prunableAt);
  if (due.length === 0) return { removed: [], kept: before };
  const next = await source.update((keySet) => pruneKeySet(keySet, { now, retention }));
  await publishMessage(options.store, keysChangedChannel, 'prune');
  const kept = listKeySet(next, retention);
  const keptKids = new Set(kept.map((key) => `${key.use}:${key.kid}`));
  return { removed: before.filter((key) => !keptKids.has(`${key.use}:${key.kid}`)), kept };
}
