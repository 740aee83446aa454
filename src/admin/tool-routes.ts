import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ProtocolError } from '../errors/protocol-error.ts';
import { AdminChangedError, AdminNotFoundError } from './admin-deps.ts';
import { adminView, sendConsolePage } from './admin-view.ts';
import { adminForPage, noticeFrom, sessionForPost } from './console-guard.ts';
import type { ConsoleState } from './console-state.ts';
import { renderToolsPage } from './pages/tools-page.ts';
import { approveToolPin, diffToolPin, listToolPins, pinnedToolNamed, rejectToolPin } from './tools.ts';
import { formPostRoute } from '../server/form-routes.ts';

/**
 * `/admin/tools`: pinned tool definitions waiting for review, and the Approve / Reject behind them. The decision is
 * the very one `gatehouse tools approve|reject` makes (src/admin/tools.ts): written to the store with who made it,
 * and announced on `tool-pins-changed`, so every replica serves (or keeps refusing) the tool at once.
 */
const page = { config: { errorFormat: 'html' as const } };
// `tool`: the digest of the tool's name (toolNameDigest), which survives the page and its form whatever the name is
// and however long. `hash`: the definition shown, which an approval must still match.
const decisionBody = z.object({ route: z.string().min(1).max(2048), tool: z.string().min(1).max(256), hash: z.string().min(1).max(256).optional(), csrf: z.string() });

export function registerToolRoutes(app: FastifyInstance, state: ConsoleState): void {
  const { admin } = state;

  app.get('/admin/tools', page, async (request, reply) => {
    const session = await adminForPage(state, request, reply, '/admin/tools');
    if (session === undefined) return reply;
    const all = await listToolPins(admin);
    // A rejected definition is shown too: it stays refused until approved (or until the backend reverts it).
    const undecided = all.filter((tool) => tool.status !== 'approved');
    const diffs = await Promise.all(undecided.map((tool) => diffToolPin(admin, tool.route, tool.name)));
    const view = await adminView(admin, 'Tools', 'tools', session, noticeFrom(request));
    const pinnedRoutes = admin.config.routes.filter((route) => route.type === 'mcp' && route.toolPinning !== 'off').map((route) => route.path);
    return sendConsolePage(reply, renderToolsPage(view, diffs, all, pinnedRoutes));
  });

  const decide = (verb: 'approve' | 'reject', action: typeof approveToolPin) =>
    app.post(`/admin/tools/${verb}`, formPostRoute, async (request, reply) => {
      const session = await sessionForPost(state, request, { admin: true });
      const { route, tool: digest, hash } = decisionBody.parse(request.body);
      // An approval names the definition the page showed; a rejection refuses whatever is pending (the safe side).
      if (verb === 'approve' && hash === undefined) throw new ProtocolError('invalid_request', 'The approval does not say which definition was reviewed; reload the page.');
      // No pin of that name any more (or a page from before this form named tools by digest): not "decided already".
      const tool = await pinnedToolNamed(admin, route, digest);
      if (tool === undefined) throw new ProtocolError('not_found', `No tool pinned on ${route} has the name this page showed: it is no longer pinned there, or the page is out of date. Reload it.`);
      try {
        await action(admin, route, tool, session.subject, verb === 'approve' ? hash : undefined);
      } catch (error) {
        if (error instanceof AdminNotFoundError) throw new ProtocolError('not_found', 'There is no such tool change; another admin may have decided it already.');
        if (error instanceof AdminChangedError) {
          throw new ProtocolError('invalid_request', 'This tool definition changed after the page showed it, or was decided already: nothing was approved. Review it again.', { status: 409 });
        }
        throw error;
      }
      request.log.info({ route, tool, decision: verb, subject: session.subject }, 'tool definition decided from the admin console');
      return reply.redirect(`/admin/tools?done=tool-${verb === 'approve' ? 'approved' : 'rejected'}`, 303);
    });
  decide('approve', approveToolPin);
  decide('reject', rejectToolPin);
}
