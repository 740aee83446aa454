import type { FastifyReply, FastifyRequest } from 'fastify';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { CompletedSignIn } from '../upstream/types.ts';
import type { ConsoleState } from './console-state.ts';
import { consoleSignInRecord } from '../records/admin.ts';
import { consumeRecord, writeRecord } from '../store/record-access.ts';

/**
 * Console sign-in goes through the same upstream IdP and the same `/callback` as MCP clients' sign-ins. The console
 * starts it with interaction id `console:<random>` and a single-use pending record naming where to return; the
 * authorization server's callback validates state, browser binding, nonce and ID token as for any sign-in, then hands
 * completions whose interaction id starts with `console:` to `completeConsoleSignIn`.
 */
export const CONSOLE_INTERACTION_PREFIX = 'console:';
/** The namespace, for tests that read the store directly (declared in src/records/admin.ts). */
export const CONSOLE_SIGN_IN_NAMESPACE = consoleSignInRecord.namespace;
export const CONSOLE_SIGN_IN_TTL_SECONDS = 600;

/** Only our own pages are return targets: anything else would make sign-in an open redirector. */
export function safeReturnTo(value: unknown): string {
  return typeof value === 'string' && /^\/(?:admin|account)(?:\/[A-Za-z0-9_-]+)*$/.test(value) ? value : '/account';
}

export async function beginConsoleSignIn(state: ConsoleState, reply: FastifyReply, returnTo: string): Promise<FastifyReply> {
  const { ctx, upstream, upstreamCookie } = state;
  const nonce = ctx.random.token();
  const pending = { returnTo: safeReturnTo(returnTo) };
  await writeRecord(ctx.store, consoleSignInRecord, nonce, pending, { ttlSeconds: CONSOLE_SIGN_IN_TTL_SECONDS });
  const { authorizationUrl, stateCookie } = await upstream.beginSignIn({
    interactionId: `${CONSOLE_INTERACTION_PREFIX}${nonce}`,
    browserBinding: state.upstreamBinding(reply.request),
  });
  upstreamCookie(reply, stateCookie, CONSOLE_SIGN_IN_TTL_SECONDS);
  return reply.header('cache-control', 'no-store').redirect(authorizationUrl, 303);
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Set by the admin plugin on the root instance, so the shared `/callback` can finish console sign-ins. */
    gatehouseConsole?: ConsoleState;
  }
}

/**
 * Finishes a console sign-in after the shared `/callback` validated it: consumes the pending record (single use),
 * sets the console session cookie and returns the browser to the page it came from.
 */
export async function completeConsoleSignIn(completed: CompletedSignIn, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const state = request.server.gatehouseConsole;
  if (state === undefined || !completed.interactionId.startsWith(CONSOLE_INTERACTION_PREFIX)) {
    throw new ProtocolError('not_found', 'No such sign-in.');
  }
  const nonce = completed.interactionId.slice(CONSOLE_INTERACTION_PREFIX.length);
  const pending = await consumeRecord(state.ctx.store, consoleSignInRecord, nonce);
  if (pending === undefined) throw new ProtocolError('invalid_request', 'This sign-in has expired or was already completed; open the page again.');
  // The upstream-state cookie stays: it binds this browser, and another sign-in of it may be under way.
  await state.sessions.start(reply, completed.identity, completed.tokens.idToken);
  return reply.header('cache-control', 'no-store').redirect(safeReturnTo(pending.returnTo), 303);
}
