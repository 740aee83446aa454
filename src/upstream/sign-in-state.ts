import { constantTimeEqual, hashToken } from '../keys/hashing.ts';
import type { Random } from '../runtime/random.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { Store } from '../store/store.ts';

/**
 * The upstream leg's `state`, PKCE verifier and nonce. One record per sign-in, single-use (`consume`), ten minutes,
 * and bound to the browser that started it by a cookie whose hash the record holds: a callback replayed, or carried
 * to another browser (login CSRF, RFC 6749 §10.12), finds no record or the wrong cookie and fails.
 *
 * Store layout: namespace `upstream-state`, key = the `state` value, value = SignInStateRecord, TTL 600 s.
 */
export const UPSTREAM_STATE_NAMESPACE = 'upstream-state';
export const SIGN_IN_STATE_TTL_SECONDS = 600;

export interface SignInStateRecord {
  interactionId: string;
  /** RFC 7636 §4.1: 64 characters of base64url (48 random bytes), above the 43-character minimum. */
  codeVerifier: string;
  nonce: string;
  /** SHA-256 of the browser-binding cookie value. */
  browserBindingHash: string;
  createdAt: number;
}

export interface NewSignInState {
  state: string;
  stateCookie: string;
  record: SignInStateRecord;
}

export async function createSignInState(
  deps: { store: Store; random: Random; now: number },
  interactionId: string,
): Promise<NewSignInState> {
  const { store, random, now } = deps;
  const state = random.token(32);
  const stateCookie = random.token(32);
  const record: SignInStateRecord = {
    interactionId,
    codeVerifier: random.token(48),
    nonce: random.token(32),
    browserBindingHash: hashToken(stateCookie),
    createdAt: now,
  };
  await store.set(UPSTREAM_STATE_NAMESPACE, state, record, { ttlSeconds: SIGN_IN_STATE_TTL_SECONDS });
  return { state, stateCookie, record };
}

const badState = (why: string) =>
  new ProtocolError('invalid_request', `The sign-in could not be completed: ${why}. Start again from the application.`);

/** Takes the record (whoever else presents the same state later gets nothing) and checks the browser binding. */
export async function consumeSignInState(
  store: Store,
  state: string | null,
  stateCookie: string | undefined,
): Promise<SignInStateRecord> {
  if (!state) throw badState('the response has no state');
  const record = await store.consume<SignInStateRecord>(UPSTREAM_STATE_NAMESPACE, state);
  if (!record) throw badState('the sign-in state is unknown, expired or already used');
  if (!stateCookie || !constantTimeEqual(hashToken(stateCookie), record.browserBindingHash)) {
    throw badState('the sign-in was started in another browser');
  }
  return record;
}
