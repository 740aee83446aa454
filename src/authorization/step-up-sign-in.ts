import type { FastifyReply } from 'fastify';
import { clearStepUp, pendingStepUp } from '../records/step-up.ts';
import type { CompletedSignIn, Reauthentication } from '../upstream/types.ts';
import type { InteractionDeps } from './interaction-deps.ts';
import { CONSENT_STATE_TTL_SECONDS } from './interaction-state.ts';

/**
 * Conditional Access step-up, the authorization server's half (the broker remembers what the IdP asked for,
 * src/records/step-up.ts). A user who owes the IdP a step-up must meet the IdP again, with its `claims` challenge:
 * reusing the gateway's own session, or an upstream sign-in without the challenge, would mint the same upstream token
 * and the on-behalf-of exchange would fail again.
 * @see OIDC Core §5.5 (the `claims` request parameter)
 */

/** Sends the browser to the IdP for `interactionId`, carrying the challenge; the state cookie binds it to this browser. */
export async function redirectToUpstreamSignIn(
  deps: InteractionDeps,
  reply: FastifyReply,
  input: {
    interactionId: string;
    loginHint?: string | undefined;
    claims?: string | undefined;
    reauthenticate?: Reauthentication | undefined;
  },
): Promise<void> {
  const { authorizationUrl, stateCookie } = await deps.upstream.beginSignIn({
    interactionId: input.interactionId,
    ...(input.loginHint === undefined ? {} : { loginHint: input.loginHint }),
    ...(input.claims === undefined ? {} : { claims: input.claims }),
    ...(input.reauthenticate === undefined ? {} : { reauthenticate: input.reauthenticate }),
    browserBinding: deps.cookies.readRaw(reply.request, 'upstream'),
  });
  deps.cookies.writeRaw(reply, 'upstream', stateCookie, CONSENT_STATE_TTL_SECONDS);
  await reply.header('cache-control', 'no-store').redirect(authorizationUrl, 303);
}

/**
 * After a sign-in: `true` when this user owes a step-up the sign-in did not ask for (it could not: the gateway learns
 * who signed in only from the IdP), after sending the browser straight back to the IdP with the challenge. Otherwise
 * the step-up, if any, is settled by this sign-in and forgotten.
 */
export async function continueWithStepUp(deps: InteractionDeps, reply: FastifyReply, completed: CompletedSignIn): Promise<boolean> {
  const { store } = deps.ctx;
  const pending = await pendingStepUp(store, completed.identity.subject);
  if (pending === undefined) return false;
  if (pending.claims !== undefined && completed.requestedClaims !== pending.claims) {
    // The client's fresh-login demand holds for this second leg too: the grant is made from its ID token.
    await redirectToUpstreamSignIn(deps, reply, {
      interactionId: completed.interactionId,
      loginHint: completed.identity.email,
      claims: pending.claims,
      reauthenticate: completed.reauthenticate,
    });
    return true;
  }
  await clearStepUp(store, completed.identity.subject);
  return false;
}
