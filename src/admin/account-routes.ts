import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createBrowserCookies } from '../authorization/browser-cookies.ts';
import { describeScopes, protectedResources } from '../authorization/protected-resources.ts';
import { cookieLifetimeSeconds, forget, isWithdrawn, liveDecisions, parseDecisions, type DecisionKind } from '../authorization/remembered-decisions.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { describeClient } from './clients.ts';
import { isConsoleAdmin } from './console-session.ts';
import { noticeFrom, sessionForPage, sessionForPost } from './console-guard.ts';
import { consoleCookiesSecure, type ConsoleState } from './console-state.ts';
import { listGrants, revokeGrantForPage } from './grants.ts';
import { renderAccountPage, type ConnectedApp, type RememberedRow } from './pages/account-page.ts';
import { formPostRoute } from '../server/form-routes.ts';

/**
 * `/account` — "connected apps" for every signed-in user: the MCP clients they approved, and revoking one; and the
 * consent decisions this browser remembers (approvals, and denials for their few minutes), and forgetting one. A user
 * only ever sees and revokes grants whose subject is theirs; another user's grant id answers exactly like a missing
 * one (404), so grant ids cannot be probed.
 */
const grantParams = z.object({ grantId: z.string().min(1).max(128) });
const forgetBody = z.object({
  kind: z.enum(['approvals', 'denials']),
  clientId: z.string().min(1).max(2048),
  redirectUri: z.string().min(1).max(2048),
  resource: z.string().min(1).max(2048),
  csrf: z.string(),
});
const page = { config: { errorFormat: 'html' as const } };

export function registerAccountRoutes(app: FastifyInstance, state: ConsoleState): void {
  const { admin, ctx } = state;
  // The consent step's own cookies (same names, same sealing): what this browser remembered is read and undone here.
  const cookies = createBrowserCookies({ keyring: ctx.keyring, secure: consoleCookiesSecure(ctx), app });
  const remembered = (request: FastifyRequest, kind: DecisionKind) => liveDecisions(parseDecisions(cookies.read(request, kind)), ctx.clock.now());

  app.get('/account', page, async (request, reply) => {
    const session = await sessionForPage(state, request, reply, '/account');
    if (session === undefined) return reply;
    const grants = await listGrants(admin, { user: session.subject });
    // Built per request: a configuration reload may have reworded the scopes, and the page shows today's words.
    const resources = protectedResources(ctx.publicUrl, ctx.config.routes);
    const apps: ConnectedApp[] = await Promise.all(
      grants.map(async (grant) => {
        const client = await describeClient(admin, grant.clientId);
        const access = Object.entries(grant.resourceScopes).map(([resource, scopes]) => ({ resource, scopes: describeScopes(resources.find(resource), scopes) }));
        return { grant, hosts: client.hosts, access, ...(client.name === undefined ? {} : { name: client.name }) };
      }),
    );
    // An approval this user withdrew since (a grant revoked here or by an operator) no longer answers for them
    // (remembered-decisions.ts): listed as in force, the page said the opposite of what the next consent does.
    const rows = await Promise.all(
      (['approvals', 'denials'] as const).flatMap((kind) =>
        remembered(request, kind).map(async (decision): Promise<RememberedRow | undefined> => {
          if (kind === 'approvals' && (await isWithdrawn(ctx.store, session.subject, decision.clientId, decision.decidedAt ?? 0))) return undefined;
          const client = await describeClient(admin, decision.clientId);
          return { kind, decision, ...(client.name === undefined ? {} : { name: client.name }) };
        }),
      ),
    );
    const decisions = rows.filter((row) => row !== undefined);
    const notice = noticeFrom(request);
    const view = {
      title: 'Connected apps',
      section: 'account' as const,
      session,
      isAdmin: isConsoleAdmin(session, state.ctx.config.admin),
      ...(notice === undefined ? {} : { notice }),
    };
    return reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').send(renderAccountPage(view, apps, decisions));
  });

  app.post('/account/grants/:grantId/revoke', formPostRoute, async (request, reply) => {
    const session = await sessionForPost(state, request, { admin: false });
    const { grantId } = grantParams.parse(request.params);
    if (await revokeGrantForPage(admin, grantId, { subject: session.subject, notFound: 'You have no such connected app.' })) {
      state.metrics.grantRevoked('user');
      request.log.info({ grantId }, 'grant revoked by its user');
    }
    return reply.redirect('/account?done=grant-revoked', 303);
  });

  app.post('/account/decisions/forget', formPostRoute, async (request, reply) => {
    await sessionForPost(state, request, { admin: false });
    const body = forgetBody.safeParse(request.body);
    if (!body.success) throw new ProtocolError('invalid_request', 'The form is incomplete; reload the page and try again.');
    const { kind, ...target } = body.data;
    const now = ctx.clock.now();
    const kept = forget(remembered(request, kind), target, now);
    if (kept.length === 0) cookies.clear(reply, kind);
    else cookies.write(reply, kind, kept, cookieLifetimeSeconds(kept, now));
    request.log.info({ clientId: target.clientId, kind }, 'remembered consent decision forgotten');
    return reply.redirect('/account?done=decision-forgotten', 303);
  });
}
