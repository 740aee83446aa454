import type { FastifyReply, FastifyRequest } from 'fastify';
import { forgetDownstreamTokens } from '../records/downstream-tokens.ts';
import { interactionSignedInRecord } from '../records/interaction.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { runSteps, type HandlerStep, type StepContext } from '../server/handler-steps.ts';
import { upstreamStateRecord } from '../records/upstream.ts';
import { readRecord, writeRecord } from '../store/record-access.ts';
import type { CompletedSignIn } from '../upstream/types.ts';
import { recordSignIn } from './account-record.ts';
import type { InteractionDeps } from './interaction-deps.ts';
import { CONSENT_STATE_TTL_SECONDS, CONSOLE_INTERACTION_PREFIX, type SignedInRecord } from './interaction-state.ts';
import { redirectSignInFailure } from './sign-in-failure.ts';
import { continueWithStepUp } from './step-up-sign-in.ts';

/**
 * GET /callback — the upstream IdP's redirect after sign-in. The handler is `upstreamCallbackSteps`, run in order over
 * one UpstreamCallback (../server/handler-steps.ts); the README table of src/authorization is checked against the list.
 * The sign-in completes under the interaction's own path (finish-sign-in.ts, `signedInSteps`), where the provider's
 * interaction cookie is sent, so only the browser that started it can complete it.
 */
export interface UpstreamCallback extends StepContext {
  readonly deps: InteractionDeps;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  /** Set by takeStateCookie: this browser's half of the upstream state binding (absent when the browser has none). */
  stateCookie?: string | undefined;
  /** Set by completeUpstreamSignIn: the validated sign-in, its upstream tokens already sealed. */
  completed?: CompletedSignIn;
}

function completedSignIn(callback: UpstreamCallback): CompletedSignIn {
  if (callback.completed === undefined) throw new Error('step order: the callback has no completed sign-in yet');
  return callback.completed;
}

/**
 * The browser's state cookie, left in place: it binds the browser, not this sign-in (sign-in-state.ts), so another
 * sign-in of this browser still under way needs it — clearing it on every callback, even one with a bogus state,
 * failed that one. A replayed callback finds its state record consumed.
 */
export function takeStateCookie(callback: UpstreamCallback): void {
  callback.stateCookie = callback.deps.cookies.readRaw(callback.request, 'upstream');
}

/**
 * The interaction the sign-in is for must still be there (oidc-provider keeps it for an hour), before the code is
 * exchanged: a sign-in finished after it expired could only end on the expired page, yet it stored the user's upstream
 * tokens and account first. Read without using the state up; a state that is missing or not this browser's is left
 * to the next step, which says so. Console sign-ins (`console:`) have no provider interaction.
 */
export async function requireLiveInteraction(callback: UpstreamCallback): Promise<void> {
  const { deps, request } = callback;
  const state = new URL(request.url, deps.ctx.publicUrl).searchParams.get('state');
  if (!state) return;
  const pending = await readRecord(deps.ctx.store, upstreamStateRecord, state);
  if (pending === undefined || pending.interactionId.startsWith(CONSOLE_INTERACTION_PREFIX)) return;
  if ((await deps.provider.Interaction.find(pending.interactionId)) === undefined) {
    throw new ProtocolError('invalid_request', 'This sign-in request has expired. Start again from the application.', {
      detail: 'upstream callback for an interaction that no longer exists',
    });
  }
}

/**
 * The upstream client validates `state` (single use), this browser's state cookie, the nonce and the ID token, and
 * seals the upstream tokens. A failure that names a live interaction goes back to the client as an OAuth error
 * redirect; one that does not (state missing, replayed or of another browser) is shown as a page.
 */
export async function completeUpstreamSignIn(callback: UpstreamCallback): Promise<void> {
  const { deps, request, reply, stateCookie } = callback;
  const callbackUrl = new URL(request.url, deps.ctx.publicUrl);
  try {
    callback.completed = await deps.upstream.completeSignIn({ callbackUrl, stateCookie });
  } catch (error) {
    if (!(await redirectSignInFailure(deps, request, reply, error))) throw error;
    callback.answered = true;
  }
}

/** A sign-in the admin console started (`console:` id) goes to the console's hook (404 when there is none). */
export async function handOverConsoleSignIn(callback: UpstreamCallback): Promise<void> {
  const completed = completedSignIn(callback);
  if (!completed.interactionId.startsWith(CONSOLE_INTERACTION_PREFIX)) return;
  if (callback.deps.consoleSignIn === undefined) throw new ProtocolError('not_found', 'No such sign-in.');
  await callback.deps.consoleSignIn(completed, callback.request, callback.reply);
  callback.answered = true;
}

/**
 * A user who owes the IdP a step-up (src/records/step-up.ts) and signed in without its `claims` challenge goes back to
 * the IdP with it, under the same interaction; a sign-in that carried it settles the step-up.
 */
export async function requireStepUpClaims(callback: UpstreamCallback): Promise<void> {
  if (await continueWithStepUp(callback.deps, callback.reply, completedSignIn(callback))) callback.answered = true;
}

/** The account record (name, email, groups for tool policy) is created or refreshed from the ID token's identity. */
export async function recordAccount(callback: UpstreamCallback): Promise<void> {
  const { ctx } = callback.deps;
  await recordSignIn(ctx.store, ctx.clock, completedSignIn(callback).identity);
}

/**
 * A downstream failure remembered before this sign-in (`consent_required`, …) must not answer the next tool call:
 * the user may just have consented again upstream.
 */
export async function forgetDownstreamFailures(callback: UpstreamCallback): Promise<void> {
  await forgetDownstreamTokens(callback.deps.ctx.store, completedSignIn(callback).identity.subject);
}

/** The signed-in subject waits (single use, short-lived) for the browser under the interaction's path (303). */
export async function continueUnderInteraction(callback: UpstreamCallback): Promise<void> {
  const completed = completedSignIn(callback);
  const record: SignedInRecord = { subject: completed.identity.subject };
  await writeRecord(callback.deps.ctx.store, interactionSignedInRecord, completed.interactionId, record, { ttlSeconds: CONSENT_STATE_TTL_SECONDS });
  callback.reply.header('cache-control', 'no-store').redirect(`/interaction/${encodeURIComponent(completed.interactionId)}/signed-in`, 303);
  callback.answered = true;
}

/** In order; the README table of src/authorization is checked against these names. */
export const upstreamCallbackSteps: readonly HandlerStep<UpstreamCallback>[] = [
  takeStateCookie,
  requireLiveInteraction,
  completeUpstreamSignIn,
  handOverConsoleSignIn,
  requireStepUpClaims,
  recordAccount,
  forgetDownstreamFailures,
  continueUnderInteraction,
];

export function upstreamCallbackHandler(deps: InteractionDeps) {
  return async function handleUpstreamCallback(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    await runSteps(upstreamCallbackSteps, { deps, request, reply });
    return reply;
  };
}
