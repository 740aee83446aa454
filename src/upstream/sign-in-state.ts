import { constantTimeEqual, hashToken } from '../keys/hashing.ts';
import type { Random } from '../runtime/random.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { Store } from '../store/store.ts';
import { upstreamStateRecord } from '../records/upstream.ts';
import { consumeRecord, readRecord, writeRecord } from '../store/record-access.ts';
import type { z } from 'zod';

/**
 * The upstream leg's `state`, PKCE verifier and nonce. One record per sign-in, single-use (`consume`), ten minutes,
 * and bound to the browser that started it by a cookie whose hash the record holds: a callback replayed, or carried
 * to another browser (login CSRF, RFC 6749 §10.12), finds no record or the wrong cookie and fails.
 * Declared in src/records/upstream.ts.
 *
 * The cookie binds a browser, not one sign-in: a browser that already holds one reuses it for its next sign-in.
 * With a new value per sign-in, the second of two sign-ins started together (an editor connecting two servers, a
 * console tab beside an authorization) overwrote the first one's cookie, and the first callback failed as "started in
 * another browser". Single use stays the record's, so replays fail as before.
 */
export const SIGN_IN_STATE_TTL_SECONDS = 600;

export type SignInStateRecord = z.infer<typeof upstreamStateRecord.schema>;

export interface NewSignInState {
  state: string;
  stateCookie: string;
  record: SignInStateRecord;
}

/** What random.token(32) gives: a browser binding of that shape is reused, anything else replaced. */
const BROWSER_BINDING = /^[A-Za-z0-9_-]{43}$/;

export async function createSignInState(
  deps: { store: Store; random: Random; now: number },
  interactionId: string,
  claims?: string,
  browserBinding?: string,
  reauthenticate?: SignInStateRecord['reauthenticate'],
): Promise<NewSignInState> {
  const { store, random, now } = deps;
  const state = random.token(32);
  const stateCookie = browserBinding !== undefined && BROWSER_BINDING.test(browserBinding) ? browserBinding : random.token(32);
  const record: SignInStateRecord = {
    interactionId,
    codeVerifier: random.token(48),
    nonce: random.token(32),
    browserBindingHash: hashToken(stateCookie),
    createdAt: now,
    ...(claims === undefined ? {} : { claims }),
    ...(reauthenticate === undefined ? {} : { reauthenticate }),
  };
  await writeRecord(store, upstreamStateRecord, state, record, { ttlSeconds: SIGN_IN_STATE_TTL_SECONDS });
  return { state, stateCookie, record };
}

// The reason is the log's too (`detail`): a login-CSRF attempt (another browser) and an expired link are told apart.
const badState = (why: string) =>
  new ProtocolError('invalid_request', `The sign-in could not be completed: ${why}. Start again from the application.`, { detail: `upstream callback: ${why}` });

/**
 * Checks the browser binding, then takes the record (whoever else presents the same state later gets nothing). In
 * that order: a `state` seen elsewhere (the IdP's logs, a Referer) opened in another browser is refused without
 * using the record up, which cancelled the real browser's sign-in.
 */
export async function consumeSignInState(
  store: Store,
  state: string | null,
  stateCookie: string | undefined,
): Promise<SignInStateRecord> {
  if (!state) throw badState('the response has no state');
  const unknown = () => badState('the sign-in state is unknown, expired or already used');
  const found = await readRecord(store, upstreamStateRecord, state);
  if (!found) throw unknown();
  if (!stateCookie || !constantTimeEqual(hashToken(stateCookie), found.browserBindingHash)) {
    throw badState('the sign-in was started in another browser');
  }
  // Atomic: of two callbacks for this state (a double submit, a replay racing the browser), one gets the record.
  const record = await consumeRecord(store, upstreamStateRecord, state);
  if (!record) throw unknown();
  return record;
}
