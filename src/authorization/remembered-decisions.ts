import { z } from 'zod';
import { consentWithdrawnRecord } from '../records/consent.ts';
import { readRecord, RecordInvalidError, writeRecord } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';
import { sameRedirectTarget } from './redirect-uri-policy.ts';

/**
 * Consent decisions a browser remembers (in a sealed cookie), each bound to the exact client id, redirect URI (any
 * port of a loopback one) and resource. An approval covers a request when it approved at least the requested scopes; a later request for more
 * scopes is asked again. A denial is remembered only briefly (DENIAL_MEMORY_SECONDS): long enough that a client
 * cannot re-prompt the user in a loop, short enough that a slip of the finger is not a day-long lockout. `/account`
 * lists both kinds for the browser it is opened in, and forgets any one of them.
 */
export interface RememberedDecision {
  clientId: string;
  redirectUri: string;
  resource: string;
  scopes: string[];
  /** Epoch ms. */
  expiresAt: number;
  /** Epoch ms; absent in a cookie written before it was kept (then older than any withdrawal). */
  decidedAt?: number;
}

export type DecisionKind = 'approvals' | 'denials';

/** A denial answers the same request silently for this long, then the page asks again. */
export const DENIAL_MEMORY_SECONDS = 5 * 60;

/** Bounded so the cookie stays well under browser limits (~4 KB) however many clients a user approves. */
const MAX_REMEMBERED = 12;

export interface ConsentRequest {
  clientId: string;
  redirectUri: string;
  resource: string;
  scopes: string[];
}

export type DecisionTarget = Pick<RememberedDecision, 'clientId' | 'redirectUri' | 'resource'>;

const decisionList = z.array(
  z.object({ clientId: z.string(), redirectUri: z.string(), resource: z.string(), scopes: z.array(z.string()), expiresAt: z.number(), decidedAt: z.number().optional() }),
);

/** The cookie's value (already unsealed) as decisions; anything else — an older shape, garbage — is no decision. */
export function parseDecisions(value: unknown): RememberedDecision[] {
  const parsed = decisionList.safeParse(value);
  return parsed.success ? parsed.data : [];
}

const sameTarget = (decision: DecisionTarget, request: DecisionTarget) =>
  decision.clientId === request.clientId && sameRedirectTarget(decision.redirectUri, request.redirectUri) && decision.resource === request.resource;

export function findCovering(decisions: RememberedDecision[] | undefined, request: ConsentRequest, now: number): RememberedDecision | undefined {
  return (decisions ?? []).find(
    (decision) => decision.expiresAt > now && sameTarget(decision, request) && request.scopes.every((scope) => decision.scopes.includes(scope)),
  );
}

export function findForTarget(decisions: RememberedDecision[] | undefined, request: DecisionTarget, now: number): RememberedDecision | undefined {
  return (decisions ?? []).find((decision) => decision.expiresAt > now && sameTarget(decision, request));
}

/** Adds (or replaces) the decision for this target, dropping expired ones and the oldest beyond the bound. */
export function remember(decisions: RememberedDecision[] | undefined, decision: RememberedDecision, now: number): RememberedDecision[] {
  const kept = (decisions ?? []).filter((existing) => existing.expiresAt > now && !sameTarget(existing, decision));
  return [...kept, decision].slice(-MAX_REMEMBERED);
}

/** The decisions still in force, oldest first. */
export function liveDecisions(decisions: RememberedDecision[] | undefined, now: number): RememberedDecision[] {
  return (decisions ?? []).filter((decision) => decision.expiresAt > now);
}

/** Undoes one remembered decision: the next request for that target shows the consent page again. */
export function forget(decisions: RememberedDecision[] | undefined, target: DecisionTarget, now: number): RememberedDecision[] {
  return liveDecisions(decisions, now).filter((decision) => !sameTarget(decision, target));
}

/** Undoes every remembered decision for a client (any redirect URI, any resource). */
export function forgetClient(decisions: RememberedDecision[] | undefined, clientId: string, now: number): RememberedDecision[] {
  return liveDecisions(decisions, now).filter((decision) => decision.clientId !== clientId);
}

/** How long the cookie must live to hold `decisions` (the latest expiry), in whole seconds. */
export function cookieLifetimeSeconds(decisions: RememberedDecision[], now: number): number {
  return Math.max(0, Math.ceil((Math.max(now, ...decisions.map((decision) => decision.expiresAt)) - now) / 1000));
}

/**
 * A person ended one of `subject`'s grants for `clientId` (the user on /account, an operator): the approvals browsers
 * remembered until now no longer answer for that user. Without this, the client — still running, its token just
 * refused — re-authorized at once, the remembered approval skipped the page, and the revocation was undone without
 * anyone seeing it.
 */
export async function withdrawConsent(store: Store, subject: string, clientId: string, now: number, rememberDays: number): Promise<void> {
  await writeRecord(store, consentWithdrawnRecord, `${subject} ${clientId}`, { withdrawnAt: now }, { ttlSeconds: rememberDays * 24 * 3600 });
}

/**
 * Whether an approval of `clientId` made at `decidedAt` (0 for a cookie from before it was kept), remembered by a
 * browser signed in as `subject`, predates the last withdrawal of consent. A record that does not parse still says
 * a withdrawal happened (as an invalid revocation record still says revoked): read as none, the remembered approval
 * authorized the withdrawn client silently. Until it expires, the user is asked each time (a page too many, not a
 * revocation undone).
 */
export async function isWithdrawn(store: Store, subject: string, clientId: string, decidedAt: number): Promise<boolean> {
  try {
    const withdrawn = await readRecord(store, consentWithdrawnRecord, `${subject} ${clientId}`);
    return withdrawn !== undefined && withdrawn.withdrawnAt >= decidedAt;
  } catch (error) {
    if (error instanceof RecordInvalidError) return true;
    throw error;
  }
}
