import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { accountRecord } from '../records/account.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { AdminNotFoundError, listAll } from './admin-deps.ts';
import { AUDIT_OUTCOMES, queryAudit, recentUseSince, type AuditQuery } from './audit-query.ts';
import { listClients, revokeClient } from './clients.ts';
import { adminForPage, noticeFrom, sessionForPost } from './console-guard.ts';
import type { ConsoleSession } from './console-session.ts';
import type { ConsoleState } from './console-state.ts';
import { listGrants, revokeGrantForPage } from './grants.ts';
import { probe } from './health-checks.ts';
import { BROKER_DOWNSTREAM_METRIC } from '../observability/metrics.ts';
import { renderAuditPage } from './pages/audit-page.ts';
import { renderClientsPage } from './pages/clients-page.ts';
import { renderGrantsPage } from './pages/grants-page.ts';
import type { ConsoleSection } from './pages/layout.ts';
import { adminView, sendConsolePage } from './admin-view.ts';
import { renderOverviewPage, type OverviewData } from './pages/overview-page.ts';
import { renderReloadPage } from './pages/reload-page.ts';
import { accountsBySubject } from './users.ts';

/** `/admin` pages: overview, clients, grants, tool calls; and the revoke actions behind them. */

const ACTIVITY_WINDOW_MS = 3_600_000;
const AUDIT_WINDOW_MS = 24 * 3_600_000;
const page = { config: { errorFormat: 'html' as const } };

const grantParams = z.object({ grantId: z.string().min(1).max(128) });
const clientBody = z.object({ client_id: z.string().min(1).max(2048) });
const auditFilter = z.object({
  user: z.string().max(512).optional(),
  tool: z.string().max(256).optional(),
  outcome: z.enum([...AUDIT_OUTCOMES, '']).optional(),
});

async function brokerActivity(state: ConsoleState): Promise<OverviewData['broker']> {
  const values = async (name: string) => {
    const metric = state.metrics.registry.getSingleMetric(name);
    return metric === undefined ? [] : (await metric.get()).values;
  };
  // The broker's own counter when it is wired (outcome cache_hit/exchanged/waited/failed), plus our exchange counter.
  const samples = [
    ...(await values(BROKER_DOWNSTREAM_METRIC)).map((value) => ({ ...value, ok: value.labels.outcome !== 'failed' })),
    ...(await values('gatehouse_downstream_exchanges_total')).map((value) => ({ ...value, ok: value.labels.outcome === 'success' })),
  ];
  return state.ctx.config.broker.downstream.map((downstream) => {
    const mine = samples.filter((sample) => sample.labels.downstream === downstream.name);
    const count = (ok: boolean) => mine.filter((sample) => sample.ok === ok).reduce((sum, sample) => sum + sample.value, 0);
    return { name: downstream.name, success: count(true), failed: count(false) };
  });
}

export function registerAdminRoutes(app: FastifyInstance, state: ConsoleState): void {
  const { admin, ctx } = state;
  const view = (title: string, section: ConsoleSection, session: ConsoleSession, notice?: string) => adminView(admin, title, section, session, notice);
  const html = sendConsolePage;

  app.get('/admin', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin');
    if (session === undefined) return reply;
    const [clients, users, upstream, store, broker] = await Promise.all([
      listClients(admin),
      listAll(admin.store, accountRecord),
      probe(() => state.upstream.checkHealth(), 2_000),
      probe(() => ctx.store.ping(), 2_000),
      brokerActivity(state),
    ]);
    const data: OverviewData = {
      samples: state.metrics.recentRequests(30),
      activeGrants: clients.reduce((sum, client) => sum + client.activeGrants, 0),
      clients: clients.length,
      users: users.length,
      upstream,
      store,
      broker,
      canReload: state.reloadConfig !== undefined,
    };
    return html(reply, renderOverviewPage(await view('Overview', 'overview', session), data));
  });

  app.get('/admin/clients', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin/clients');
    if (session === undefined) return reply;
    const recent = await recentUseSince(ctx.store, ctx.clock.now() - ACTIVITY_WINDOW_MS);
    return html(reply, renderClientsPage(await view('Clients', 'clients', session, noticeFrom(request)), await listClients(admin, recent)));
  });

  app.get('/admin/grants', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin/grants');
    if (session === undefined) return reply;
    const recent = await recentUseSince(ctx.store, ctx.clock.now() - ACTIVITY_WINDOW_MS);
    const [grants, accounts, clients] = await Promise.all([listGrants(admin, {}, recent), accountsBySubject(admin), listClients(admin)]);
    const clientNames = new Map(clients.flatMap((client) => (client.name === undefined ? [] : [[client.clientId, client.name] as const])));
    return html(reply, renderGrantsPage(await view('Grants', 'grants', session, noticeFrom(request)), grants, accounts, clientNames));
  });

  app.get('/admin/audit', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin/audit');
    if (session === undefined) return reply;
    const filter = auditFilter.parse(request.query);
    const query: AuditQuery = {
      limit: 100,
      ...(filter.user ? { user: filter.user } : {}),
      ...(filter.tool ? { tool: filter.tool } : {}),
      ...(filter.outcome ? { outcome: filter.outcome } : {}),
      since: ctx.clock.now() - AUDIT_WINDOW_MS,
    };
    return html(reply, renderAuditPage(await view('Recent tool calls', 'audit', session), await queryAudit(ctx.store, query), query));
  });

  app.post('/admin/grants/:grantId/revoke', page, async (request, reply) => {
    await sessionForPost(state, request, { admin: true });
    const { grantId } = grantParams.parse(request.params);
    await revokeGrantForPage(admin, grantId, { notFound: 'There is no such grant; it may have been revoked already.' });
    state.metrics.grantRevoked('admin');
    request.log.info({ grantId }, 'grant revoked from the admin console');
    return reply.redirect('/admin/grants?done=grant-revoked', 303);
  });

  // Reload the configuration file without a restart (src/app/reload-config.ts), and show what applied.
  app.post('/admin/reload', page, async (request, reply) => {
    const session = await sessionForPost(state, request, { admin: true });
    if (state.reloadConfig === undefined) {
      throw new ProtocolError('invalid_request', 'This gateway was started without a configuration file: there is nothing to reload.');
    }
    const outcome = state.reloadConfig();
    request.log.info({ ok: outcome.ok }, 'configuration reload requested from the admin console');
    return html(reply.code(outcome.ok ? 200 : 422), renderReloadPage(await view('Configuration reload', 'overview', session), outcome));
  });

  app.post('/admin/clients/revoke', page, async (request, reply) => {
    await sessionForPost(state, request, { admin: true });
    const { client_id: clientId } = clientBody.parse(request.body);
    try {
      const result = await revokeClient(admin, clientId);
      for (const _ of result.revokedGrants) state.metrics.grantRevoked('admin');
      request.log.info({ clientId, grants: result.revokedGrants.length }, 'client revoked from the admin console');
    } catch (error) {
      if (error instanceof AdminNotFoundError) throw new ProtocolError('not_found', 'There is no such client.');
      throw error;
    }
    return reply.redirect('/admin/clients?done=client-revoked', 303);
  });
}
