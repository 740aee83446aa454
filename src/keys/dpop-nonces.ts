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
  /** Per secret, the accepted nonces of the current step (the next one last but one, as issued): computed once a step. */
  const windows = new WeakMap<Buffer, { step: number; nonces: Buffer[] }>();
  const windowOf = (secret: Buffer, now: number): Buffer[] => {
    const known = windows.get(secret);
    if (known?.step === now) return known.nonces;
    const nonces: Buffer[] = [];
    for (let at = now - ACCEPTED_STEPS_EITHER_SIDE; at <= now + ACCEPTED_STEPS_EITHER_SIDE; at++) nonces.push(Buffer.from(nonceAt(secret, at), 'base64url'));
    windows.set(secret, { step: now, nonces });
    return nonces;
  };
  return {
    current() {
      const nonces = windowOf(dpopNonceSecret(keyring), step());
      return (nonces[ACCEPTED_STEPS_EITHER_SIDE + 1] as Buffer).toString('base64url');
    },
    isValid(nonce) {
      const presented = Buffer.from(nonce, 'base64url');
      if (presented.length !== 32 || presented.toString('base64url') !== nonce) return false;
      const now = step();
      // Asked on each call, so a key rotation (keyring reload) takes effect at once; derived once per key set.
      return deriveKeys(keyring, PURPOSE).some((secret) => windowOf(secret, now).some((accepted) => timingSafeEqual(accepted, presented)));
    },
  };
}
