import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ProtocolError } from '../errors/protocol-error.ts';
import { AdminNotFoundError } from './admin-deps.ts';
import { describeClient } from './clients.ts';
import { isConsoleAdmin } from './console-session.ts';
import { noticeFrom, sessionForPage, sessionForPost } from './console-guard.ts';
import type { ConsoleState } from './console-state.ts';
import { listGrants, revokeGrantById } from './grants.ts';
import { renderAccountPage, type ConnectedApp } from './pages/account-page.ts';

/**
 * `/account` — "connected apps" for every signed-in user: the MCP clients they approved, and revoking one. A user
 * only ever sees and revokes grants whose subject is theirs; another user's grant id answers exactly like a missing
 * one (404), so grant ids cannot be probed.
 */
const grantParams = z.object({ grantId: z.string().min(1).max(128) });
const page = { config: { errorFormat: 'html' as const } };

export function registerAccountRoutes(app: FastifyInstance, state: ConsoleState): void {
  const { admin } = state;

  app.get('/account', page, async (request, reply) => {
    const session = await sessionForPage(state, request, reply, '/account');
    if (session === undefined) return reply;
    const grants = await listGrants(admin, { user: session.subject });
    const apps: ConnectedApp[] = await Promise.all(
      grants.map(async (grant) => {
        const client = await describeClient(admin, grant.clientId);
        return { grant, hosts: client.hosts, ...(client.name === undefined ? {} : { name: client.name }) };
      }),
    );
    const notice = noticeFrom(request);
    const view = {
      title: 'Connected apps',
      section: 'account' as const,
      session,
      isAdmin: isConsoleAdmin(session, state.ctx.config.admin),
      ...(notice === undefined ? {} : { notice }),
    };
    return reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').send(renderAccountPage(view, apps));
  });

  app.post('/account/grants/:grantId/revoke', page, async (request, reply) => {
    const session = await sessionForPost(state, request, { admin: false });
    const { grantId } = grantParams.parse(request.params);
    try {
      await revokeGrantById(admin, grantId, { subject: session.subject });
    } catch (error) {
      if (error instanceof AdminNotFoundError) throw new ProtocolError('not_found', 'You have no such connected app.');
      throw error;
    }
    state.metrics.grantRevoked('user');
    request.log.info({ grantId }, 'grant revoked by its user');
    return reply.redirect('/account?done=grant-revoked', 303);
  });
}
