import type { FastifyRequest } from 'fastify';
import { isSameOriginRequest } from '../authorization/request-origin.ts';
import { constantTimeEqual } from '../keys/hashing.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { ConsoleSession } from './console-session.ts';

/**
 * Every console POST (revoke, sign out) passes two independent checks: the form's `csrf` field equals the token in
 * the sealed session cookie (compared in constant time; another site can make the browser send the cookie but can
 * neither read it nor guess the token), and the browser's `Origin` / `Sec-Fetch-Site` say the form came from us.
 *
 * The token lives in the server-side console session, so @fastify/csrf-protection (a second secret in a second
 * cookie) would add nothing but another thing to rotate.
 *
 * @see OWASP CSRF Prevention Cheat Sheet — double submit (signed), Fetch Metadata
 */
export function checkConsoleCsrf(request: FastifyRequest, session: ConsoleSession, publicOrigin: string): void {
  if (!isSameOriginRequest(request, publicOrigin)) {
    throw new ProtocolError('access_denied', 'This form was submitted from another site and was refused.');
  }
  const body = request.body as Record<string, unknown> | undefined;
  const token = typeof body?.csrf === 'string' ? body.csrf : '';
  if (token === '' || !constantTimeEqual(token, session.csrf)) {
    throw new ProtocolError('access_denied', 'The form is missing its security token or it has expired; reload the page and try again.');
  }
}
