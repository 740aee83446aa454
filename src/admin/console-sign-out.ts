import type { FastifyReply, FastifyRequest } from 'fastify';
import { ProtocolError } from '../errors/protocol-error.ts';
import { checkConsoleCsrf } from './console-csrf.ts';
import type { ConsoleState } from './console-state.ts';
import { renderBarePage } from './pages/layout.ts';

/** Where the IdP returns the browser after its logout; register `<publicUrl>/admin/signed-out` at the IdP. */
import { SIGNED_OUT_PATH } from '../web/paths.ts';
export { SIGNED_OUT_PATH };

/**
 * Sign-out from `/admin` and `/account`: the server-side session ends first (every copy of the cookie stops working
 * on every replica), then, where the IdP publishes an `end_session_endpoint`, the browser goes there with the ID token
 * of this sign-in as `id_token_hint` and comes back to SIGNED_OUT_PATH (OIDC RP-Initiated Logout 1.0). Without the
 * IdP's logout, the next visit would be signed straight back in by the IdP's own session cookie — "sign out" would
 * only have lasted until the next click.
 */
export async function signOut(state: ConsoleState, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const session = await state.sessions.read(request);
  if (session === undefined) throw new ProtocolError('access_denied', 'You are not signed in.');
  checkConsoleCsrf(request, session, new URL(state.ctx.publicUrl).origin);
  const { idToken } = await state.sessions.end(reply, session);
  request.log.info({ subject: session.subject }, 'console sign-out');
  const postLogoutRedirectUri = `${state.ctx.publicUrl}${SIGNED_OUT_PATH}`;
  const logoutUrl = await state.upstream.endSessionUrl?.({ postLogoutRedirectUri, ...(idToken === undefined ? {} : { idTokenHint: idToken }) }).catch((error: unknown) => {
    // The Gatehouse session is already over; an IdP that cannot be reached only keeps its own session.
    request.log.warn({ err: error }, 'IdP logout unavailable; signed out of Gatehouse only');
    return undefined;
  });
  if (logoutUrl !== undefined) return reply.header('cache-control', 'no-store').redirect(logoutUrl, 303);
  return signedOutPage(reply);
}

export function signedOutPage(reply: FastifyReply): FastifyReply {
  return reply
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(renderBarePage('Signed out', 'You are signed out of the Gatehouse console.'));
}
