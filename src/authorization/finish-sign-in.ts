import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Grant, InteractionDetails } from 'oidc-provider';
import { forgetDownstreamTokens } from '../records/downstream-tokens.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { CompletedSignIn } from '../upstream/types.ts';
import { recordSignIn } from './account-record.ts';
import { approveRedirectUri } from './approved-redirects.ts';
import { finishInteraction, loadInteraction, parseInteractionUid, type InteractionDeps } from './interaction-deps.ts';
import {
  CONSENT_STATE_TTL_SECONDS,
  CONSOLE_INTERACTION_PREFIX,
  type ApprovedConsentRecord,
  type SignedInRecord,
} from './interaction-state.ts';
import { consentApprovedRecord, interactionSignedInRecord } from '../records/interaction.ts';
import { consumeRecord, writeRecord } from '../store/record-access.ts';
import { registerSignInFailureRoute, redirectSignInFailure } from './sign-in-failure.ts';

/**
 * After the upstream sign-in:
 * GET /callback                   the IdP's redirect: validated by the upstream client (state, cookie, nonce,
 *                                 ID token), which also seals the upstream tokens; we record the account, then
 *                                 continue at
 * GET /interaction/:uid/signed-in  under the interaction's path, where the provider's interaction cookie is sent,
 *                                 so the sign-in can only complete in the browser that started it.
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

export function registerSignInRoutes(app: FastifyInstance, deps: InteractionDeps): void {
  const { ctx, cookies } = deps;
  const htmlErrors = { errorFormat: 'html' as const };

  app.get('/callback', { config: htmlErrors }, async (request, reply) => {
    const stateCookie = cookies.readRaw(request, 'upstream');
    const callbackUrl = new URL(request.url, ctx.publicUrl);
    let completed: CompletedSignIn;
    try {
      // Validates state (single use), this browser's state cookie, nonce and ID token; errors are ProtocolErrors.
      completed = await deps.upstream.completeSignIn({ callbackUrl, stateCookie });
    } catch (error) {
      cookies.clear(reply, 'upstream');
      if (await redirectSignInFailure(deps, request, reply, error)) return reply;
      // No interaction to answer (state missing, replayed or of another browser): shown as a page.
      throw error;
    }
    cookies.clear(reply, 'upstream');
    if (completed.interactionId.startsWith(CONSOLE_INTERACTION_PREFIX)) {
      if (deps.consoleSignIn === undefined) throw new ProtocolError('not_found', 'No such sign-in.');
      return deps.consoleSignIn(completed, request, reply);
    }
    const { subject } = completed.identity;
    // The upstream client has already sealed the upstream tokens (with the IdP's refresh-token lifetime).
    await recordSignIn(ctx.store, ctx.clock, completed.identity);
    // A downstream failure remembered before this sign-in (`consent_required`, …) must not answer the next tool call:
    // the user may just have consented again upstream.
    await forgetDownstreamTokens(ctx.store, subject);
    const record: SignedInRecord = { subject };
    await writeRecord(ctx.store, interactionSignedInRecord, completed.interactionId, record, { ttlSeconds: CONSENT_STATE_TTL_SECONDS });
    return reply
      .header('cache-control', 'no-store')
      .redirect(`/interaction/${encodeURIComponent(completed.interactionId)}/signed-in`, 303);
  });

  app.get('/interaction/:uid/signed-in', { config: htmlErrors }, async (request, reply) => {
    const uid = parseInteractionUid(request);
    const details = await loadInteraction(deps, request, reply, uid);
    const signedIn = await consumeRecord(ctx.store, interactionSignedInRecord, uid);
    const approved = await consumeRecord(ctx.store, consentApprovedRecord, uid);
    if (signedIn === undefined || approved === undefined || approved.clientId !== details.params.client_id) {
      throw new ProtocolError('invalid_request', 'This sign-in has expired or was already completed; start again from the application.');
    }
    await finishWithGrant(deps, request, reply, details, signedIn.subject, approved);
  });

  registerSignInFailureRoute(app, deps);
}
