import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ConsoleSession } from './console-session.ts';
import { adminRightsStale, consoleAdminRefusal } from './console-session.ts';
import type { ConsoleState } from './console-state.ts';
import { checkConsoleCsrf } from './console-csrf.ts';
import { sendProtocolError } from '../server/error-handler.ts';
import { ProtocolError } from '../errors/protocol-error.ts';

/**
 * Who may see a console page. Not signed in: to sign-in, then back here (GET) or refused (POST: a form cannot be
 * replayed across a sign-in). Signed in but not an admin on /admin: a 403 page that names nothing — not the
 * configured admins, not the user's own groups, nothing from the store.
 */
export async function sessionForPage(state: ConsoleState, request: FastifyRequest, reply: FastifyReply, returnTo: string): Promise<ConsoleSession | undefined> {
  const session = await state.sessions.read(request);
  if (session !== undefined) return session;
  await reply.header('cache-control', 'no-store').redirect(`/admin/sign-in?return=${encodeURIComponent(returnTo)}`, 303);
  return undefined;
}

export async function adminForPage(state: ConsoleState, request: FastifyRequest, reply: FastifyReply, returnTo: string): Promise<ConsoleSession | undefined> {
  const session = await sessionForPage(state, request, reply, returnTo);
  if (session === undefined) return undefined;
  if (adminRightsStale(session, state.ctx.clock.now())) {
    // Admin rights are only as fresh as the IdP's last word on the user's groups: ask the IdP again (silently when it
    // still has a session), so someone removed from the admin group loses the console within minutes.
    await reply.header('cache-control', 'no-store').redirect(`/admin/sign-in?return=${encodeURIComponent(returnTo)}`, 303);
    return undefined;
  }
  const refusal = consoleAdminRefusal(session, state.ctx.config.admin);
  if (refusal === undefined) return session;
  logAdminRefusal(state, session, refusal);
  // Not a dead end: the user may have signed in with the wrong account (their IdP session signs them straight back
  // in), and their own page has the sign-out.
  const nextStep = { text: 'If you signed in with the wrong account, sign out on your account page and sign in with another; if you think you should have access, ask your administrator.', link: { path: '/account', label: 'Your account' } } as const;
  await sendProtocolError(reply, new ProtocolError('access_denied', 'Your account does not have access to the admin console.', { nextStep }), { format: 'html' });
  return undefined;
}

/** At info: an operator asked "why can't I get into /admin?" finds the answer in the log, not by guessing. */
function logAdminRefusal(state: ConsoleState, session: ConsoleSession, reason: string): void {
  // The reason names the user's groups (the first few, consoleAdminRefusal): not every group again beside it.
  state.ctx.logger.info({ subject: session.subject, groupCount: session.groups.length, reason }, 'admin console refused');
}

/** For state-changing POSTs: a session (and admin rights when asked), and the CSRF checks. */
export async function sessionForPost(state: ConsoleState, request: FastifyRequest, options: { admin: boolean }): Promise<ConsoleSession> {
  const session = await state.sessions.read(request);
  if (session === undefined) throw new ProtocolError('access_denied', 'You are not signed in; open the page again.');
  if (options.admin && adminRightsStale(session, state.ctx.clock.now())) {
    throw new ProtocolError('access_denied', 'Your admin rights need to be confirmed again; open the page again.');
  }
  const refusal = options.admin ? consoleAdminRefusal(session, state.ctx.config.admin) : undefined;
  if (refusal !== undefined) {
    logAdminRefusal(state, session, refusal);
    throw new ProtocolError('access_denied', 'Not allowed.');
  }
  checkConsoleCsrf(request, session, new URL(state.ctx.publicUrl).origin);
  return session;
}

/**
 * Fixed notices by key, so a query parameter can never put arbitrary text on the page. A Map, not an object
 * literal: `?done=toString` must find nothing, not `Object.prototype.toString` (which made the page a 500).
 */
export const notices: ReadonlyMap<string, string> = new Map([
  ['grant-revoked', 'Access revoked. Its tokens are refused on every replica.'],
  ['client-revoked', 'Client revoked: all its grants ended on every replica.'],
  ['tool-approved', 'Approved: every replica serves the tool with its new definition.'],
  ['tool-rejected', 'Rejected: the changed definition stays refused on every replica.'],
  ['decision-forgotten', 'Forgotten: that application will ask for your consent again.'],
]);

export function noticeFrom(request: FastifyRequest): string | undefined {
  const done = (request.query as Record<string, unknown>).done;
  return typeof done === 'string' ? notices.get(done) : undefined;
}
