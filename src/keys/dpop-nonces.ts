import { hkdfSync, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../runtime/clock.ts';
import { deriveKeys } from './derived-keys.ts';
import type { Keyring } from './keyring.ts';

/**
 * DPoP nonces (RFC 9449 §8, §9), one scheme for the whole origin: the token endpoint (oidc-provider, given
 * `dpopNonceSecret` as its `nonceSecret`) and every gateway route issue and accept the same nonces. A client keeps one
 * nonce per server, and here the authorization server and the resource server are one origin: a client that had
 * answered a route's nonce challenge sent that nonce in its next refresh proof, and the token endpoint, which took no
 * nonce at all, refused the refresh (openid-client / oauth4webapi do exactly this). With one scheme a nonce learnt
 * anywhere is good everywhere, and nothing is sent twice.
 *
 * The scheme is oidc-provider's, so both sides agree: a nonce is HKDF-SHA256 of a 60-second time step (as 8 bytes,
 * big-endian, the salt) under a secret derived from the keyring (info `DPoP`), base64url; the one handed out is the
 * next step's, and steps two either side are accepted. Any replica computes the same ones without a store round trip,
 * and they follow a key rotation: the current signing key's secret issues, every key's secret is accepted (the
 * authorization server, rebuilt on a key change, takes the current one's).
 */
export interface DpopNonces {
  /** The nonce to hand out now. */
  current(): string;
  /** True when `nonce` is one this origin issued within the accepted steps. */
  isValid(nonce: string): boolean;
}

export const DPOP_NONCE_STEP_SECONDS = 60;
const ACCEPTED_STEPS_EITHER_SIDE = 2;
const INFO = 'DPoP';
const PURPOSE = 'gatehouse dpop nonce';

/** The secret the authorization server takes as oidc-provider's `features.dPoP.nonceSecret` (32 bytes). */
export function dpopNonceSecret(keyring: Keyring): Buffer {
  const [secret] = deriveKeys(keyring, PURPOSE);
  if (secret === undefined) throw new Error('the keyring has no signing key to derive DPoP nonces from');
  return secret;
}

function nonceAt(secret: Buffer, step: number): string {
  const salt = Buffer.alloc(8);
  salt.writeBigUInt64BE(BigInt(step));
  return Buffer.from(hkdfSync('sha256', secret, salt, INFO, 32)).toString('base64url');
}

export function createDpopNonces(options: { keyring: Keyring; clock: Clock; stepSeconds?: number }): DpopNonces {
  const { keyring, clock, stepSeconds = DPOP_NONCE_STEP_SECONDS } = options;
  const step = (): number => Math.floor(clock.now() / 1000 / stepSeconds);
  /**
   * The nonces of the current step, computed once a step and key set (ten HKDFs per key otherwise, on every request of
   * a nonce route): the one to hand out, and every key's accepted ones. A reload builds a new key set, whose current
   * signing key is a new object, so a rotation is followed at once.
   */
  let window: { keySet: object; step: number; current: string; accepted: Buffer[] } | undefined;
  const windowNow = () => {
    const keySet = keyring.currentSigningKey();
    const now = step();
    if (window?.keySet === keySet && window.step === now) return window;
    const secrets = deriveKeys(keyring, PURPOSE);
    const accepted: Buffer[] = [];
    for (const secret of secrets) {
      for (let at = now - ACCEPTED_STEPS_EITHER_SIDE; at <= now + ACCEPTED_STEPS_EITHER_SIDE; at++) accepted.push(Buffer.from(nonceAt(secret, at), 'base64url'));
    }
    const [first] = secrets;
    if (first === undefined) throw new Error('the keyring has no signing key to derive DPoP nonces from');
    window = { keySet, step: now, current: nonceAt(first, now + 1), accepted };
    return window;
  };
  return {
    current: () => windowNow().current,
    isValid(nonce) {
      const presented = Buffer.from(nonce, 'base64url');
      if (presented.length !== 32 || presented.toString('base64url') !== nonce) return false;
      return windowNow().accepted.some((accepted) => timingSafeEqual(accepted, presented));
    },
  };
}
