import { ProtocolError } from '../errors/protocol-error.ts';
import { insufficientScope } from '../errors/bearer-challenge.ts';
import { JSONRPC, McpGatewayError } from './gateway-error.ts';
import type { AuthorizedCall } from './gateway-runtime.ts';
import type { McpPost } from './mcp-message.ts';
import type { AuditDraft } from './request-audit.ts';
import { toolChallenge, type RouteState } from './route-state.ts';
import { decideTool } from './tool-policy.ts';

/**
 * Applies the route's per-tool policies to every `tools/call` of a POST (each call of a batch too, so a batch
 * cannot smuggle a denied call behind an allowed one). A denial is answered as the route says:
 * - `insufficient_scope`: HTTP 403 with a challenge naming every scope needed, so the client can step up; when
 *   only a group is missing no step-up can help, so it is a plain 403 `access_denied`;
 * - `jsonrpc_error`: HTTP 200 with a JSON-RPC error for the request, for clients that do not handle step-up.
 *
 * @see MCP 2025-11-25 authorization §Scope Challenge Handling
 */
export function enforceToolPolicy(state: RouteState, post: McpPost, call: AuthorizedCall, draft: AuditDraft): void {
  for (const message of post.messages) {
    if (!('method' in message) || message.method !== 'tools/call') continue;
    const tool = message.params?.name;
    if (typeof tool !== 'string') continue;
    draft.tool ??= tool;
    const decision = decideTool(state.route, tool, call.caller);
    if (decision.allowed) continue;
    draft.outcome = 'denied';
    draft.tool = tool;
    if (state.route.deniedToolResponse === 'jsonrpc_error') {
      throw new McpGatewayError('access_denied', JSONRPC.serverError, `You are not allowed to call ${tool}.`, { status: 200 });
    }
    if (decision.missingScopes.length === 0) throw new ProtocolError('access_denied', `You are not allowed to call ${tool}.`);
    const needed = state.route.tools[tool]?.scopes ?? [];
    throw insufficientScope(toolChallenge(state, needed), `Calling ${tool} needs the scope(s): ${decision.missingScopes.join(' ')}.`);
  }
}
