import { defineChannel, defineLock, defineRecord } from '../store/define-record.ts';
import { keySetSchema } from './key-set.ts';

/**
 * The key set in the store (`keys.source: store`, the default; with `keys.source: file` none of these is used).
 * Declared here, in keys/, because the keyring sits below the shared contracts; src/records/catalogue.ts lists them.
 */

export const keySetRecord = defineRecord({
  namespace: 'keys',
  owner: 'src/keys/key-set-source.ts',
  key: '`key-set` (the only record)',
  schema: keySetSchema,
  ttl: 'none',
  singleUse: false,
  secrets: '**plain**: private signing keys and sealing keys — whoever can read the store can open sealed upstream tokens; protect the store or use `keys.source: file`',
  description:
    'The signing and sealing keys. One record, created by the first replica with `setIfAbsent`, so replicas starting together agree and a rotation is one write no reader sees half done. Read through `parseKeySet`, whose error (GH_KEY_SET_INVALID) names the problem.',
});

export const keysUpdateLock = defineLock({
  name: 'keys:update',
  owner: 'src/keys/key-set-source.ts',
  ttl: '30 s',
  description: '`gatehouse keys rotate`/`prune`/`revoke` change the key set under it, so two rotations cannot each retire the other\'s new key.',
});

export const keysChangedChannel = defineChannel({
  name: 'keys-changed',
  owner: 'src/keys/rotation.ts',
  message: '`rotate` or `prune`',
  description: 'Published after a rotation, prune or revocation; every keyring reloads (src/keys/load-keyring.ts).',
});
