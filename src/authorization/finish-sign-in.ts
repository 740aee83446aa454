import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Grant, InteractionDetails } from 'oidc-provider';
import { ProtocolError } from '../errors/protocol-error.ts';
import { runSteps, type HandlerStep, type StepContext } from '../server/handler-steps.ts';
import { approveRedirectUri } from './approved-redirects.ts';
import { finishInteraction, loadInteraction, parseInteractionUid, type InteractionDeps } from './interaction-deps.ts';
import type { ApprovedConsentRecord } from './interaction-state.ts';
import { consentApprovedRecord, interactionSignedInRecord } from '../records/interaction.ts';
import { consumeRecord } from '../store/record-access.ts';
import { cookieLifetimeSeconds, forgetClient, isWithdrawn, parseDecisions } from './remembered-decisions.ts';
import { registerSignInFailureRoute } from './sign-in-failure.ts';
import { upstreamCallbackHandler } from './upstream-callback.ts';

/**
 * After the upstream sign-in:
 * GET /callback                   the IdP's redirect (upstream-callback.ts, `upstreamCallbackSteps`): validated by
 *                                 the upstream client (state, cookie, nonce, ID token), which also seals the
 *                                 upstream tokens; we record the account, then continue at
 * GET /interaction/:uid/signed-in  under the interaction's path, where the provider's interaction cookie is sent,
 *                                 so the sign-in can only complete in the browser that started it (`signedInSteps`).
 * A failed sign-in goes back to the client as an OAuth error (sign-in-failure.ts); a sign-in the admin console
 * started (`console:` interaction id) goes to the console's hook.
 */

/**
 * Creates or extends the user's grant for this client with exactly what was approved (a client never gets more than
 * the user saw), and finishes the interaction with login + consent.
 */
export async function finishWithGrant(
  deps: InteractionDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  details: InteractionDetails,
  accountId: string,
  approved: ApprovedConsentRecord,
): Promise<void> {
  const { Grant } = deps.provider;
  let grant: Grant | undefined = details.grantId === undefined ? undefined : await Grant.find(details.grantId);
  if (grant !== undefined && (grant.accountId !== accountId || grant.clientId !== approved.clientId)) grant = undefined;
  grant ??= new Grant({ accountId, clientId: approved.clientId });
  if (approved.scopes.length > 0) grant.addResourceScope(approved.resource, approved.scopes.join(' '));
  // Resource scopes are also provider-level scopes (see provider-configuration.ts), so the request's scope check
  // needs them approved at that level too; the access token still carries only the resource's scopes.
  const requestScopes = [...approved.oidcScopes, ...approved.scopes];
  if (requestScopes.length > 0) grant.addOIDCScope(requestScopes.join(' '));
  const grantId = await grant.save();
  // The approval is for the redirect URI the consent page showed; another one of this client is asked about again.
  await approveRedirectUri(deps.ctx.store, grantId, approved.redirectUri, deps.ctx.config.authorization.refreshTokenAbsoluteSeconds);
  await finishInteraction(deps, request, reply, { login: { accountId }, consent: { grantId } });
}

/** The browser continuing a sign-in at `/interaction/:uid/signed-in`. */
export interface SignedInContinuation extends StepContext {
  readonly deps: InteractionDeps;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  /** Set by readSignedInUid. */
  uid?: string;
  /** Set by checkSameBrowser. */
  details?: InteractionDetails;
  /** Set by consumeSignIn: the subject `/callback` validated, and what the user approved before signing in. */
  signedIn?: { subject: string; approved: ApprovedConsentRecord };
}

function filled<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`step order: the sign-in has no ${name} yet`);
  return value;
}

/** The `:uid` must be one oidc-provider could have issued (404 page otherwise). */
export function readSignedInUid(continuation: SignedInContinuation): void {
  continuation.uid = parseInteractionUid(continuation.request);
}

/** Only the browser holding the provider's interaction cookie continues (400): a leaked uid completes nothing. */
export async function checkSignInBrowser(continuation: SignedInContinuation): Promise<void> {
  const { deps, request, reply } = continuation;
  continuation.details = await loadInteraction(deps, request, reply, filled(continuation.uid, 'uid'));
}

/**
 * The sign-in and the approval it completes are each used once, and the approval must be for this interaction's
 * client (400 otherwise: expired, replayed, or crossed with another request).
 */
export async function consumeSignIn(continuation: SignedInContinuation): Promise<void> {
  const { store } = continuation.deps.ctx;
  const uid = filled(continuation.uid, 'uid');
  // Both in the same turn: a second request for the same interaction (a double navigation) then takes neither,
  // instead of each taking one and both failing.
  const [signedIn, approved] = await Promise.all([consumeRecord(store, interactionSignedInRecord, uid), consumeRecord(store, consentApprovedRecord, uid)]);
  if (signedIn === undefined || approved === undefined || approved.clientId !== filled(continuation.details, 'interaction').params.client_id) {
    throw new ProtocolError('invalid_request', 'This sign-in has expired or was already completed; start again from the application.');
  }
  continuation.signedIn = { subject: signedIn.subject, approved };
}

/**
 * A browser's remembered approval stood in for the consent page while nobody was signed in; now the user is known.
 * If a person ended one of their grants for this client since that approval (remembered-decisions.ts), the approval
 * no longer answers for them: the browser forgets its approvals of the client and goes back to the consent page of
 * this same request. Without this, a browser with no Gatehouse session (expired, or a `prompt=login`) re-authorized a
 * revoked client at once through a silent IdP sign-in.
 */
export async function recheckRememberedApproval(continuation: SignedInContinuation): Promise<void> {
  const { deps, request, reply } = continuation;
  const { subject, approved } = filled(continuation.signedIn, 'sign-in');
  if (approved.rememberedAt === undefined) return;
  if (!(await isWithdrawn(deps.ctx.store, subject, approved.clientId, approved.rememberedAt))) return;
  const now = deps.ctx.clock.now();
  const kept = forgetClient(parseDecisions(deps.cookies.read(request, 'approvals')), approved.clientId, now);
  if (kept.length === 0) deps.cookies.clear(reply, 'approvals');
  else deps.cookies.write(reply, 'approvals', kept, cookieLifetimeSeconds(kept, now));
  request.log.info({ clientId: approved.clientId }, 'remembered approval withdrawn since; asking again');
  await reply.redirect(`/interaction/${filled(continuation.uid, 'uid')}`, 303);
  continuation.answered = true;
}

/** The grant holds exactly what the user approved; the provider redirects to the client with the code and `iss`. */
export async function issueGrant(continuation: SignedInContinuation): Promise<void> {
  const { deps, request, reply } = continuation;
  const { subject, approved } = filled(continuation.signedIn, 'sign-in');
  await finishWithGrant(deps, request, reply, filled(continuation.details, 'interaction'), subject, approved);
  continuation.answered = true;
}

/** In order; the README table of src/authorization is checked against these names. */
export const signedInSteps: readonly HandlerStep<SignedInContinuation>[] = [readSignedInUid, checkSignInBrowser, consumeSignIn, recheckRememberedApproval, issueGrant];

export function registerSignInRoutes(app: FastifyInstance, deps: InteractionDeps): void {
  const htmlErrors = { errorFormat: 'html' as const };

  app.get('/callback', { config: htmlErrors }, upstreamCallbackHandler(deps));

  app.get('/interaction/:uid/signed-in', { config: htmlErrors }, async (request, reply) => {
    await runSteps(signedInSteps, { deps, request, reply });
  });

  registerSignInFailureRoute(app, deps);
}
