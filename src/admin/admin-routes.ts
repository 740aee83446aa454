import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ProtocolError } from '../errors/protocol-error.ts';
import { AdminNotFoundError } from './admin-deps.ts';
import { auditQueryFor, parseAuditFilter } from './audit-filter.ts';
import { queryAuditBounded, recentUseSince } from './audit-query.ts';
import { listClients, revokeClient } from './clients.ts';
import { adminForPage, noticeFrom, sessionForPost } from './console-guard.ts';
import type { ConsoleSession } from './console-session.ts';
import type { ConsoleState } from './console-state.ts';
import { listGrants, revokeGrantForPage } from './grants.ts';
import { renderAuditPage } from './pages/audit-page.ts';
import { renderClientsPage } from './pages/clients-page.ts';
import { renderGrantsPage } from './pages/grants-page.ts';
import type { ConsoleSection } from './pages/layout.ts';
import { adminView, sendConsolePage } from './admin-view.ts';
import { renderReloadPage } from './pages/reload-page.ts';
import { accountsBySubject, clientNamesOf, consoleDirectory } from './users.ts';
import { formPostRoute } from '../server/form-routes.ts';

/** `/admin` pages: clients, grants, tool calls; and the revoke and reload actions (the overview: overview-routes.ts). */

const ACTIVITY_WINDOW_MS = 3_600_000;
const page = { config: { errorFormat: 'html' as const } };

const grantParams = z.object({ grantId: z.string().min(1).max(128) });
const clientBody = z.object({ client_id: z.string().min(1).max(2048) });
/** `/admin/clients?q=`: a search over ids and names; anything else in the query (a notice) is left to its reader. */
const clientsQuery = z.object({ q: z.string().max(200).optional() }).loose();

export function registerAdminRoutes(app: FastifyInstance, state: ConsoleState): void {
  const { admin, ctx } = state;
  const view = (title: string, section: ConsoleSection, session: ConsoleSession, notice?: string) => adminView(admin, title, section, session, notice);
  const html = sendConsolePage;

  app.get('/admin/clients', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin/clients');
    if (session === undefined) return reply;
    const query = clientsQuery.safeParse(request.query);
    if (!query.success) throw new ProtocolError('invalid_request', 'The client search is not valid: one `q` of at most 200 characters.', { nextStep: { text: 'Change the search and try again.', link: { path: '/admin/clients', label: 'Clients' } } });
    const recent = await recentUseSince(ctx.store, ctx.clock.now() - ACTIVITY_WINDOW_MS, ctx.clock.now() + 1);
    return html(reply, renderClientsPage(await view('Clients', 'clients', session, noticeFrom(request)), await listClients(admin, recent), query.data.q));
  });

  app.get('/admin/grants', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin/grants');
    if (session === undefined) return reply;
    const recent = await recentUseSince(ctx.store, ctx.clock.now() - ACTIVITY_WINDOW_MS, ctx.clock.now() + 1);
    const [grants, accounts, clients] = await Promise.all([listGrants(admin, {}, recent), accountsBySubject(admin), listClients(admin)]);
    return html(reply, renderGrantsPage(await view('Grants', 'grants', session, noticeFrom(request)), grants, accounts, clientNamesOf(clients)));
  });

  app.get('/admin/audit', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin/audit');
    if (session === undefined) return reply;
    const filter = parseAuditFilter(request.query);
    const directory = await consoleDirectory(admin);
    const result = await queryAuditBounded(ctx.store, auditQueryFor(filter, directory, ctx.clock.now(), 100));
    return html(reply, renderAuditPage(await view('Recent tool calls', 'audit', session), result, filter, directory));
  });

  app.post('/admin/grants/:grantId/revoke', formPostRoute, async (request, reply) => {
    await sessionForPost(state, request, { admin: true });
    const { grantId } = grantParams.parse(request.params);
    if (await revokeGrantForPage(admin, grantId, { notFound: 'There is no such grant; it may have been revoked already.' })) {
      state.metrics.grantRevoked('admin');
      request.log.info({ grantId }, 'grant revoked from the admin console');
    }
    return reply.redirect('/admin/grants?done=grant-revoked', 303);
  });

  // Reload the configuration file without a restart (src/app/reload-config.ts), and show what applied.
  app.post('/admin/reload', formPostRoute, async (request, reply) => {
    const session = await sessionForPost(state, request, { admin: true });
    if (state.reloadConfig === undefined) {
      throw new ProtocolError('invalid_request', 'This gateway was started without a configuration file: there is nothing to reload.');
    }
    const outcome = await state.reloadConfig();
    request.log.info({ ok: outcome.ok }, 'configuration reload requested from the admin console');
    return html(reply.code(outcome.ok ? 200 : 422), renderReloadPage(await view('Configuration reload', 'overview', session), outcome));
  });

  app.post('/admin/clients/revoke', formPostRoute, async (request, reply) => {
    await sessionForPost(state, request, { admin: true });
    const { client_id: clientId } = clientBody.parse(request.body);
    try {
      const result = await revokeClient(admin, clientId);
      for (const _ of result.revokedGrants) state.metrics.grantRevoked('admin');
      request.log.info({ clientId, grants: result.revokedGrants.length, appOnlyTokens: result.revokedAppOnlyTokens.length }, 'client revoked from the admin console');
    } catch (error) {
      if (error instanceof AdminNotFoundError) throw new ProtocolError('not_found', 'There is no such client.');
      throw error;
    }
    return reply.redirect('/admin/clients?done=client-revoked', 303);
  });
}
