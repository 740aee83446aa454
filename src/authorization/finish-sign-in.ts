import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Grant, InteractionDetails } from 'oidc-provider';
import { z } from 'zod';
import { ProtocolError } from '../server/errors.ts';
import { saveUpstreamTokens } from '../upstream/token-vault.ts';
import { recordSignIn } from './account-record.ts';
import { finishInteraction, loadInteraction, type InteractionDeps } from './interaction-deps.ts';
import {
  APPROVED_CONSENT_NAMESPACE,
  CONSENT_STATE_TTL_SECONDS,
  SIGNED_IN_NAMESPACE,
  type ApprovedConsentRecord,
  type SignedInRecord,
} from './interaction-state.ts';

/**
 * After the upstream sign-in:
 * GET /callback                   the IdP's redirect: validated by the upstream client (state, cookie, nonce,
 *                                 ID token); we record the account and seal the upstream tokens, then continue at
 * GET /interaction/:uid/signed-in  under the interaction's path, where the provider's interaction cookie is sent,
 *                                 so the sign-in can only complete in the browser that started it.
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
  await finishInteraction(deps, request, reply, { login: { accountId }, consent: { grantId } });
}

const uidParams = z.object({ uid: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) });

export function registerSignInRoutes(app: FastifyInstance, deps: InteractionDeps): void {
  const { ctx, cookies } = deps;
  const htmlErrors = { errorFormat: 'html' as const };

  app.get('/callback', { config: htmlErrors }, async (request, reply) => {
    const stateCookie = cookies.readRaw(request, 'upstream');
    const callbackUrl = new URL(request.url, ctx.publicUrl);
    // Errors here (state missing or replayed, cookie of another browser, upstream `access_denied`) are ProtocolErrors
    // from the upstream client and are shown as a page: without a valid state we do not know which client to tell.
    const completed = await deps.upstream.completeSignIn({ callbackUrl, stateCookie });
    cookies.clear(reply, 'upstream');
    await recordSignIn(ctx.store, ctx.clock, completed.identity);
    await saveUpstreamTokens({ store: ctx.store, keyring: ctx.keyring, clock: ctx.clock }, completed.identity.subject, completed.tokens);
    const record: SignedInRecord = { subject: completed.identity.subject };
    await ctx.store.set(SIGNED_IN_NAMESPACE, completed.interactionId, record, { ttlSeconds: CONSENT_STATE_TTL_SECONDS });
    return reply
      .header('cache-control', 'no-store')
      .redirect(`/interaction/${encodeURIComponent(completed.interactionId)}/signed-in`, 303);
  });

  app.get('/interaction/:uid/signed-in', { config: htmlErrors }, async (request, reply) => {
    const parsed = uidParams.safeParse(request.params);
    if (!parsed.success) throw new ProtocolError('not_found', 'No such sign-in request.');
    const uid = parsed.data.uid;
    const details = await loadInteraction(deps, request, reply, uid);
    const signedIn = await ctx.store.consume<SignedInRecord>(SIGNED_IN_NAMESPACE, uid);
    const approved = await ctx.store.consume<ApprovedConsentRecord>(APPROVED_CONSENT_NAMESPACE, uid);
    if (signedIn === undefined || approved === undefined || approved.clientId !== details.params.client_id) {
      throw new ProtocolError('invalid_request', 'This sign-in has expired or was already completed; start again from the application.');
    }
    await finishWithGrant(deps, request, reply, details, signedIn.subject, approved);
  });
}
