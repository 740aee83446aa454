import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import { onKeyringChange, type Keyring } from '../keys/keyring.ts';

/**
 * The provider instance in use. oidc-provider copies its signing keys (and cookie keys) when it is constructed, so
 * when the keyring reloads after a rotation the provider is rebuilt from the same configuration function; otherwise
 * it would keep signing with a key that a later prune removes, and every token it issued would stop verifying.
 * Nothing per-request lives in the provider itself (grants, codes, sessions are in the store), so swapping it is safe;
 * an in-flight request finishes on the instance it started on.
 */
export interface CurrentProvider {
  get(): Provider;
  /** The Node request handler of the current instance. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Stops following keyring changes. */
  close(): void;
}

export function followKeyring(build: () => Provider, keyring: Keyring, logger: Logger): CurrentProvider {
  let provider = build();
  let handler = provider.callback();
  const stop = onKeyringChange(keyring, () => {
    try {
      const next = build();
      provider = next;
      handler = next.callback();
      logger.info('authorization server rebuilt with the reloaded signing keys');
    } catch (error) {
      // Keep serving with the previous keys: after a rotation they are still in the key set until pruned; after a
      // revocation what this instance signs with the revoked key is refused wherever it is verified, and this error
      // is the operator's cue to restart.
      logger.error({ err: error }, 'could not rebuild the authorization server after a key change');
    }
  });
  return {
    get: () => provider,
    handle: (req, res) => handler(req, res),
    close: stop,
  };
}
