import type { RouteConfig } from '../config/schema.ts';
import type { GatewayRuntime } from './gateway-runtime.ts';
import { JSONRPC, McpGatewayError } from './gateway-error.ts';
import type { McpPost } from './mcp-message.ts';
import { auditNamedTool, type AuditDraft } from './request-audit.ts';
import type { ToolStanding } from './tool-pins.ts';
import type { ReviewTools } from './tools-list-filter.ts';
import { StoreUnavailableError, storeFailureLogFields } from '../store/store.ts';

/**
 * The route's `toolPinning` applied to a request (tool-pins.ts keeps the pins). Under `block` a tool is called only
 * while its listed definition is the approved one: a changed, new, rejected or never-listed tool (a look-alike name
 * of a pinned tool included) is refused with a JSON-RPC error, so a backend cannot swap what a tool does behind the
 * description the user and model trusted. Under `warn` only a rejected tool is refused; the rest is logged and audited.
 */
const WHY: Record<Exclude<ToolStanding, 'pinned'>, string> = {
  changed: 'its definition changed since it was approved',
  new: 'it appeared after the tools of this server were approved',
  unlisted: 'it is not a tool this server listed (tools are called by their exact listed name)',
  rejected: 'an administrator rejected its current definition',
};

export async function enforceToolPinning(runtime: GatewayRuntime, route: RouteConfig, post: McpPost, draft: AuditDraft): Promise<void> {
  if (route.toolPinning === 'off') return;
  for (const message of post.messages) {
    if (!('method' in message) || message.method !== 'tools/call') continue;
    const tool = message.params?.name;
    if (typeof tool !== 'string') continue;
    const standing = await standingOf(runtime, route, tool);
    if (standing === 'pinned') continue;
    auditNamedTool(draft, tool);
    draft.reason = `tool pinning: ${standing}`;
    if (route.toolPinning === 'warn' && standing !== 'rejected') {
      runtime.ctx.logger.warn({ route: route.path, tool, standing }, 'served a tool whose definition is not approved (toolPinning: warn)');
      continue;
    }
    draft.outcome = 'denied';
    throw new McpGatewayError(
      'access_denied',
      JSONRPC.serverError,
      `The tool ${tool} is blocked: ${WHY[standing]}. An administrator can review it with "gatehouse tools diff".`,
      { status: 200 },
    );
  }
}

/** Under `block` an unreadable store refuses (503, fail closed); under `warn` the call is served and the gap logged. */
async function standingOf(runtime: GatewayRuntime, route: RouteConfig, tool: string): Promise<ToolStanding> {
  try {
    return await runtime.toolPins.standing(route.path, tool);
  } catch (error) {
    if (route.toolPinning === 'block') throw error;
    runtime.ctx.logger.warn({ ...storeFailureLogFields(error), route: route.path, tool }, 'tool pins could not be checked; served (toolPinning: warn)');
    return 'pinned';
  }
}

/**
 * What a `tools/list` answer passes through: its definitions recorded, and under `block` the unapproved ones removed.
 * If the pins cannot be read (store down) `block` fails closed (no tool shown) and `warn` serves the list as it is.
 */
export function toolListReviewer(runtime: GatewayRuntime, route: RouteConfig, draft: AuditDraft): ReviewTools | undefined {
  if (route.toolPinning === 'off') return undefined;
  const everyTool = (tools: readonly unknown[]) =>
    new Set(tools.flatMap((tool) => (tool && typeof tool === 'object' && typeof (tool as { name?: unknown }).name === 'string' ? [(tool as { name: string }).name] : [])));
  return async (tools) => {
    let unpinned: Set<string>;
    try {
      unpinned = await runtime.toolPins.review(route.path, tools);
    } catch (error) {
      // An outage is expected and said in one line; anything else (a stored pin that does not validate, a bug) is
      // not an outage and is logged as what it is, with its stack.
      if (error instanceof StoreUnavailableError) runtime.ctx.logger.warn({ reason: error.detail, route: route.path }, 'tool pins could not be checked: the store is unavailable');
      else runtime.ctx.logger.error({ err: error, route: route.path }, 'tool pin review failed');
      return route.toolPinning === 'block' ? everyTool(tools) : new Set();
    }
    if (unpinned.size === 0) return unpinned;
    draft.reason = `tool pinning: not approved: ${[...unpinned].join(', ')}`.slice(0, 500);
    return route.toolPinning === 'block' ? unpinned : new Set();
  };
}
