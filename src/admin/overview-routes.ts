import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ProtocolError } from '../errors/protocol-error.ts';
import { BROKER_DOWNSTREAM_METRIC } from '../observability/metrics.ts';
import { accountRecord } from '../records/account.ts';
import { listAll } from './admin-deps.ts';
import { adminView, sendConsolePage } from './admin-view.ts';
import { OVERVIEW_WINDOWS, summarizeAudit, type OverviewWindow } from './audit-summary.ts';
import { probeBackends } from './backend-health.ts';
import { listClients } from './clients.ts';
import { adminForPage } from './console-guard.ts';
import type { ConsoleState } from './console-state.ts';
import { probe } from './health-checks.ts';
import { renderOverviewPage, type OverviewData } from './pages/overview-page.ts';
import { renderRoutesPage } from './pages/routes-page.ts';

/**
 * `/admin` (the overview: fleet traffic from the store over 1 h, 24 h or 7 d, denials by reason, top tools and
 * users, each route's backend probed now, dependencies) and `/admin/routes` (the routes as configured, read-only).
 */
const page = { config: { errorFormat: 'html' as const } };
const WINDOW_NAMES = Object.keys(OVERVIEW_WINDOWS) as [OverviewWindow, ...OverviewWindow[]];
const overviewQuery = z.strictObject({ window: z.enum(WINDOW_NAMES, { error: `choose one of ${WINDOW_NAMES.join(', ')}` }).optional() });
const PROBE_TIMEOUT_MS = 2_000;

function parseOverviewQuery(query: unknown): OverviewWindow {
  const parsed = overviewQuery.safeParse(query);
  if (parsed.success) return parsed.data.window ?? '24h';
  // An unknown parameter is not named back (its name is the requester's text, shown under Gatehouse's name).
  const problems = parsed.error.issues.map((issue) => (issue.code === 'unrecognized_keys' ? 'unknown parameter' : `${issue.path.join('.')}: ${issue.message}`));
  throw new ProtocolError('invalid_request', `The overview cannot show that (${problems.join('; ')}).`, { nextStep: { text: 'Pick one of the time windows on the page.', link: { path: '/admin', label: 'Overview' } } });
}

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

export function registerOverviewRoutes(app: FastifyInstance, state: ConsoleState): void {
  const { admin, ctx } = state;

  app.get('/admin', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin');
    if (session === undefined) return reply;
    const window = parseOverviewQuery(request.query);
    const [traffic, clients, accounts, upstream, store, broker, backends] = await Promise.all([
      summarizeAudit(ctx.store, window, ctx.clock.now()),
      listClients(admin),
      listAll(admin.store, accountRecord),
      probe(() => state.upstream.checkHealth(), PROBE_TIMEOUT_MS),
      probe(() => ctx.store.ping(), PROBE_TIMEOUT_MS),
      brokerActivity(state),
      probeBackends(ctx.fetch, ctx.config.routes, PROBE_TIMEOUT_MS),
    ]);
    const data: OverviewData = {
      window,
      traffic,
      samples: state.metrics.recentRequests(30),
      activeGrants: clients.reduce((sum, client) => sum + client.activeGrants, 0),
      clients: clients.length,
      users: accounts.length,
      upstream,
      store,
      broker,
      backends,
      accounts: new Map(accounts.map(({ value }) => [value.subject, value])),
      canReload: state.reloadConfig !== undefined,
      lastReload: state.lastReload?.(),
    };
    return sendConsolePage(reply, renderOverviewPage(await adminView(state.admin, 'Overview', 'overview', session), data));
  });

  app.get('/admin/routes', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin/routes');
    if (session === undefined) return reply;
    return sendConsolePage(reply, renderRoutesPage(await adminView(state.admin, 'Routes', 'routes', session), ctx.config.routes, ctx.publicUrl));
  });
}
