import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import { deriveHmacKeys } from '../keys/derived-keys.ts';
import type { Keyring } from '../keys/keyring.ts';
import type { Clock } from '../runtime/clock.ts';

/**
 * Resource-server DPoP nonces (RFC 9449 §9): a nonce is an HMAC of a time step under a key derived from the keyring,
 * so any replica can issue one and every replica can check it without a store round trip, and a nonce stops working
 * on its own. The route path is bound in, so a nonce of one route is not one of another.
 *
 * A nonce is accepted during its own step and the steps either side (a replica whose clock is a little behind or
 * ahead still accepts it): one to two steps in practice. The client learns the next one from `DPoP-Nonce` on any
 * response (§8.2) before it goes stale.
 */
export interface DpopNonces {
  /** The nonce to hand out now for `route`. */
  current(route: string): string;
  /** True when `nonce` was issued for `route` within the accepted steps. */
  isValid(route: string, nonce: string): boolean;
}

export const DPOP_NONCE_STEP_SECONDS = 60;

export function createDpopNonces(options: { keyring: Keyring; clock: Clock; stepSeconds?: number }): DpopNonces {
  const { keyring, clock, stepSeconds = DPOP_NONCE_STEP_SECONDS } = options;
  const step = (): number => Math.floor(clock.now() / 1000 / stepSeconds);
  const mac = (key: KeyObject, route: string, at: number): Buffer => createHmac('sha256', key).update(`${route}\n${at}`).digest();
  // Asked on each call, so a key rotation (keyring reload) takes effect at once; derived once per key set.
  const keys = (): KeyObject[] => deriveHmacKeys(keyring, 'gatehouse dpop nonce');
  return {
    current(route) {
      const [key] = keys();
      if (key === undefined) throw new Error('the keyring has no signing key to derive DPoP nonces from');
      return mac(key, route, step()).toString('base64url');
    },
    isValid(route, nonce) {
      const presented = Buffer.from(nonce, 'base64url');
      if (presented.length !== 32 || presented.toString('base64url') !== nonce) return false;
      const now = step();
      return keys().some((key) => [now - 1, now, now + 1].some((at) => timingSafeEqual(mac(key, route, at), presented)));
    },
  };
}
