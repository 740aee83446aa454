import { createHash } from 'node:crypto';
import { z } from 'zod';
import { defineRecord } from '../store/define-record.ts';
import { deleteRecord, readRecord, writeRecord } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';

/**
 * A step-up the upstream IdP asked of a user (Conditional Access, MFA, consent), or a sign-in the user owes it because
 * their upstream session ended (the IdP refused their refresh token, or the gateway holds no upstream tokens for them),
 * remembered between the tool call that met it and the user's next sign-in. The broker writes it when an on-behalf-of
 * exchange answers "the user must do more"; the authorization server reads it to send the user to the IdP (with
 * Entra's `claims` request when there is one) instead of reusing the gateway session, which would issue a grant on
 * the same dead upstream session; a backend's `insufficient_claims` answer ends the grant because of it
 * (src/proxy/backend-step-up.ts); a sign-in that carried it clears it.
 * Here, below both parts, because the broker writes and the authorization server reads it.
 */

/** Long enough for the client to re-authorize, short enough that a stale challenge does not outlive the policy. */
export const STEP_UP_TTL_SECONDS = 900;
/** Entra's claims challenges are a few hundred bytes; anything far larger is not one and is not replayed. */
const MAX_CLAIMS_LENGTH = 4096;

export const STEP_UP_REASONS = ['claims_challenge', 'interaction_required', 'consent_required', 'upstream_session_ended'] as const;
export type StepUpReason = (typeof STEP_UP_REASONS)[number];

export const upstreamStepUpRecord = defineRecord({
  namespace: 'upstream-step-up',
  owner: 'src/broker/token-broker.ts',
  key: 'SHA-256 (base64url) of the subject; an ended upstream session under that of NUL, `ended`, NUL and the subject',
  schema: z.object({
    reason: z.enum(STEP_UP_REASONS),
    /** OIDC Core §5.5 `claims` request value the IdP asked for (Entra: `{"access_token":{"acrs":…}}`). */
    claims: z.string().max(MAX_CLAIMS_LENGTH).optional(),
    createdAt: z.number(),
  }),
  ttl: `${STEP_UP_TTL_SECONDS} s`,
  singleUse: false,
  secrets: 'none: a claims challenge names policies or authentication contexts, not a credential',
  description:
    'A step-up the IdP demanded during an on-behalf-of exchange, or an upstream session found ended there: the next sign-in of this user goes to the IdP (not the gateway session), with the `claims` request if any, and clears it.',
});

export type StepUp = z.infer<typeof upstreamStepUpRecord.schema>;

const keyOf = (subject: string): string => createHash('sha256').update(subject).digest('base64url');
/**
 * An ended session is kept under a key of its own, beside what the IdP demanded: forgetting it (an exchange that
 * worked again) then deletes only it. Under one key, a read-then-delete on one replica removed a claims challenge
 * another replica wrote between the two, and the next sign-in went to the IdP without it. Its hash input starts with
 * a NUL, which no subject does (an upstream subject starts with its issuer's URL): no user's key is another's.
 */
const endedKeyOf = (subject: string): string => keyOf(`\u0000ended\u0000${subject}`);

export async function rememberStepUp(store: Store, subject: string, stepUp: StepUp): Promise<void> {
  const claims = stepUp.claims !== undefined && stepUp.claims.length <= MAX_CLAIMS_LENGTH ? stepUp.claims : undefined;
  const value: StepUp = { reason: stepUp.reason, createdAt: stepUp.createdAt, ...(claims === undefined ? {} : { claims }) };
  const key = stepUp.reason === 'upstream_session_ended' ? endedKeyOf(subject) : keyOf(subject);
  await writeRecord(store, upstreamStepUpRecord, key, value, { ttlSeconds: STEP_UP_TTL_SECONDS });
}

/**
 * What the user's next sign-in owes the IdP: a demand of the IdP's (a claims challenge, an interaction) before an
 * ended session, which says less (a demand signs the user in afresh as well). An invalid record reads as none: the
 * sign-in then simply goes on without a step-up.
 */
export async function pendingStepUp(store: Store, subject: string): Promise<StepUp | undefined> {
  return (
    (await readRecord(store, upstreamStepUpRecord, keyOf(subject), { invalid: 'absent' })) ??
    (await readRecord(store, upstreamStepUpRecord, endedKeyOf(subject), { invalid: 'absent' }))
  );
}

/** A sign-in that went to the IdP settles both. */
export async function clearStepUp(store: Store, subject: string): Promise<void> {
  await deleteRecord(store, upstreamStepUpRecord, keyOf(subject));
  await deleteRecord(store, upstreamStepUpRecord, endedKeyOf(subject));
}

/** Forgets an ended upstream session remembered for the user, once their upstream session is seen to work again. */
export async function forgetEndedSession(store: Store, subject: string): Promise<void> {
  await deleteRecord(store, upstreamStepUpRecord, endedKeyOf(subject));
}
