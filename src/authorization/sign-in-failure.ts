import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ProtocolError } from '../errors/protocol-error.ts';
import { UpstreamError } from '../upstream/errors.ts';
import { finishInteraction, loadInteraction, parseInteractionUid, type InteractionDeps } from './interaction-deps.ts';
import { CONSENT_STATE_TTL_SECONDS, CONSOLE_INTERACTION_PREFIX, type SignInFailedRecord } from './interaction-state.ts';
import { consentApprovedRecord, interactionSignInFailedRecord } from '../records/interaction.ts';
import { consumeRecord, deleteRecord, writeRecord } from '../store/record-access.ts';

/**
 * An upstream sign-in that failed (the user cancelled at the IdP, the IdP is down, its answer failed validation)
 * is the MCP client's authorization request failing, so the client is told with an OAuth error redirect — `iss`
 * included (RFC 9207) — instead of leaving the user on a page and the client waiting:
 *
 * GET /callback                          the upstream client throws an UpstreamError naming the interaction; when
 *                                        the provider still knows it, the error is kept for it and the browser goes to
 * GET /interaction/:uid/sign-in-failed   under the interaction's path, where the provider's interaction cookie is
 *                                        sent: the provider ends the interaction with the error and redirects to the
 *                                        redirect URI it validated when the request began (never one from the error).
 *
 * Without a known interaction (no or replayed state, expired interaction, a console sign-in) there is no validated
 * redirect URI to use, and the error stays a page.
 *
 * @see RFC 6749 §4.1.2.1 (error response), RFC 9207 §2 (`iss` in error responses too)
 */

const CLIENT_DESCRIPTIONS: Record<SignInFailedRecord['error'], string> = {
  access_denied: 'The sign-in was cancelled or refused at the identity provider.',
  temporarily_unavailable: 'The identity provider could not complete the sign-in; try again later.',
  server_error: 'The gateway could not complete the sign-in with its identity provider.',
};

/**
 * The error the client gets. Descriptions are fixed texts: the upstream's own codes and Entra's `AADSTS` numbers
 * stay in our log, not in a URL the client (and its logs) receive.
 */
export function clientErrorFor(error: UpstreamError): SignInFailedRecord {
  const code: SignInFailedRecord['error'] =
    error.code === 'temporarily_unavailable' || error.code === 'server_error' ? error.code : 'access_denied';
  return { error: code, description: CLIENT_DESCRIPTIONS[code] };
}

/**
 * Answers a failed `/callback` with an OAuth error for the interaction it belongs to, when there is one; false when
 * the error must be shown as a page instead.
 */
export async function redirectSignInFailure(deps: InteractionDeps, request: FastifyRequest, reply: FastifyReply, error: unknown): Promise<boolean> {
  if (!(error instanceof UpstreamError) || error.interactionId === undefined) return false;
  const uid = error.interactionId;
  if (uid.startsWith(CONSOLE_INTERACTION_PREFIX)) return false;
  const interaction = await deps.provider.Interaction.find(uid);
  if (interaction === undefined) return false;
  const record = clientErrorFor(error);
  request.log.info(
    { errorCode: error.code, upstreamError: error.upstreamError, upstreamErrorCodes: error.upstreamErrorCodes, clientError: record.error },
    'upstream sign-in failed; returning the error to the client',
  );
  await writeRecord(deps.ctx.store, interactionSignInFailedRecord, uid, record, { ttlSeconds: CONSENT_STATE_TTL_SECONDS });
  await reply.header('cache-control', 'no-store').redirect(`/interaction/${encodeURIComponent(uid)}/sign-in-failed`, 303);
  return true;
}

export function registerSignInFailureRoute(app: FastifyInstance, deps: InteractionDeps): void {
  const { ctx } = deps;

  app.get('/interaction/:uid/sign-in-failed', { config: { errorFormat: 'html' as const } }, async (request, reply) => {
    const uid = parseInteractionUid(request);
    await loadInteraction(deps, request, reply, uid);
    const failure = await consumeRecord(ctx.store, interactionSignInFailedRecord, uid);
    if (failure === undefined) {
      throw new ProtocolError('invalid_request', 'This sign-in has expired or was already completed; start again from the application.');
    }
    // The approval waited for a sign-in that did not happen; it must not complete a later one.
    await deleteRecord(ctx.store, consentApprovedRecord, uid);
    await finishInteraction(deps, request, reply, { error: failure.error, error_description: failure.description });
  });
}
