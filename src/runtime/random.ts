import { randomBytes } from 'node:crypto';

/** Injected randomness: ids, CSRF tokens, PKCE verifiers. Tests may pass a deterministic source. */
export interface Random {
  /** `bytes` random bytes, base64url-encoded (no padding). */
  token(bytes?: number): string;
}

export const cryptoRandom: Random = {
  token: (bytes = 32) => randomBytes(bytes).toString('base64url'),
};
