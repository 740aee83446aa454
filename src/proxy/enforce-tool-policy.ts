import { ProtocolError } from '../errors/protocol-error.ts';
import { insufficientScope } from '../errors/bearer-challenge.ts';
import { decideArguments } from './argument-policy.ts';
import { JSONRPC, McpGatewayError } from './gateway-error.ts';
import type { AuthorizedCall } from './gateway-runtime.ts';
import { calledTool, type McpPost } from './mcp-message.ts';
import { auditNamedTool, type AuditDraft } from './request-audit.ts';
import { toolChallenge, type RouteState } from './route-state.ts';
import type { ApprovedTool } from './tool-pins.ts';
import { decideTool, policyNameFor, type ToolDecision } from './tool-policy.ts';

/**
 * Applies the route's per-tool policies to every `tools/call` of a POST (each call of a batch too, so a batch
 * cannot smuggle a denied call behind an allowed one). A denial is answered as the route says:
 * - `insufficient_scope`: HTTP 403 with a challenge naming every scope needed, so the client can step up; when
 *   only a group or the argument policy (CEL) refuses, no step-up can help, so it is a plain 403 `access_denied`;
 * - `jsonrpc_error`: HTTP 200 with a JSON-RPC error for the request, for clients that do not handle step-up.
 * An argument-policy denial carries its reason (audited too).
 *
 * @see MCP 2025-11-25 authorization §Scope Challenge Handling
 */
export function enforceToolPolicy(
  state: RouteState,
  post: McpPost,
  call: AuthorizedCall,
  draft: AuditDraft,
  approvedToolOf: (tool: string) => Promise<ApprovedTool>,
): void | Promise<void> {
  const messages = post.messages;
  for (let index = 0; index < messages.length; index++) {
    const called = calledTool(messages[index]!);
    if (called === undefined) continue;
    const tool = policyNameFor(state.route, called);
    enforceToolDecision(state, tool, call, draft, messages.length > 1, called);
    // Only an argument policy waits (for the approved definition): a call without one is decided here, with no
    // promise, which is every call on a route that sets none.
    if (state.argumentPolicies.forTool(tool) !== undefined) return enforceFrom(index, state, post, call, draft, approvedToolOf);
  }
}

/** The rest of a POST's calls once one needs its argument policy: `start`'s arguments, then each later call whole. */
async function enforceFrom(
  start: number,
  state: RouteState,
  post: McpPost,
  call: AuthorizedCall,
  draft: AuditDraft,
  approvedToolOf: (tool: string) => Promise<ApprovedTool>,
): Promise<void> {
  for (let index = start; index < post.messages.length; index++) {
    const message = post.messages[index]!;
    const called = calledTool(message);
    if (called === undefined) continue;
    const tool = policyNameFor(state.route, called);
    const inBatch = post.messages.length > 1;
    if (index > start) enforceToolDecision(state, tool, call, draft, inBatch, called);
    await enforceArgumentPolicy(state, tool, 'params' in message ? message.params?.arguments : undefined, call, draft, approvedToolOf, inBatch, called);
  }
}

/**
 * A refusal of a batch answers each of its requests by id with the same error: said so, or the answer to an allowed
 * call of the batch (`hello`) read "Calling me needs the scope(s)…", about another call.
 */
const toldOf = (text: string, inBatch: boolean): string => (inBatch ? `The batch was refused, none of its requests ran: ${text}` : text);

/**
 * A later request naming a task a `tools/call` created (`tasks/result`, `tasks/get`…) is judged by that tool's
 * policy as it is now: a tool denied to the caller since (a configuration reload, a group left) does not hand over
 * its result through the task. Arguments are not seen again; their policy judged the call that made the task.
 */
export function enforceToolOfTask(state: RouteState, tool: string, call: AuthorizedCall, draft: AuditDraft, inBatch: boolean): void {
  enforceToolDecision(state, tool, call, draft, inBatch);
}

/** A scope or group denial, named for the audit record (the scopes are the route's own names, never a secret). */
function whichRule(decision: ToolDecision): string {
  const rules = decision.missingScopes.length > 0 ? [`missing scope ${decision.missingScopes.join(' ')}`] : [];
  if (decision.missingGroup === true) rules.push('in none of the groups the tool requires');
  return rules.join('; ');
}

/** Scopes and groups: throws the route's refusal when the caller may not call `tool`. */
function enforceToolDecision(state: RouteState, tool: string, call: AuthorizedCall, draft: AuditDraft, inBatch: boolean, called = tool): void {
  draft.tool ??= tool;
  const decision = decideTool(state.route, tool, call.caller);
  if (decision.allowed) return;
  draft.outcome = 'denied';
  auditNamedTool(draft, tool, called);
  if (decision.reason !== undefined) draft.reason = `policy: ${decision.reason}`;
  // A scope or group denial: its error code (the console counts denials by it) and which rule refused, which the
  // trail did not say — a bare `access_denied`, the same for every tool and every rule.
  const refusedAs = (code: string) => {
    if (decision.reason === undefined) draft.reason = `${code}: ${whichRule(decision)}`;
  };
  const refusal = toldOf(decision.reason === undefined ? `You are not allowed to call ${tool}.` : `You are not allowed to call ${tool}: ${decision.reason}.`, inBatch);
  if (state.route.deniedToolResponse === 'jsonrpc_error' || decision.missingScopes.length === 0) {
    refusedAs('access_denied');
    if (state.route.deniedToolResponse === 'jsonrpc_error') throw new McpGatewayError('access_denied', JSONRPC.serverError, refusal, { status: 200 });
    throw new ProtocolError('access_denied', refusal);
  }
  refusedAs('insufficient_scope');
  const needed = state.route.tools[tool]?.scopes ?? [];
  const scheme = call.claims.jkt === undefined ? 'bearer' : 'dpop';
  throw insufficientScope(toolChallenge(state, needed), toldOf(`Calling ${tool} needs the scope(s): ${decision.missingScopes.join(' ')}.`, inBatch), scheme);
}

async function enforceArgumentPolicy(
  state: RouteState,
  tool: string,
  args: unknown,
  call: AuthorizedCall,
  draft: AuditDraft,
  approvedToolOf: (tool: string) => Promise<ApprovedTool>,
  inBatch: boolean,
  called: string,
): Promise<void> {
  if (state.argumentPolicies.forTool(tool) === undefined) return;
  const approved = await approvedToolOf(tool);
  const decision = decideArguments(state.argumentPolicies, {
    tool,
    args,
    annotations: approved.annotations,
    inputSchema: approved.inputSchema,
    schemaChanged: approved.changed === true,
    caller: call.caller,
  });
  if (decision.allowed) return;
  draft.outcome = 'denied';
  auditNamedTool(draft, tool, called);
  draft.reason = `policy: ${decision.reason}`;
  const description = toldOf(`You are not allowed to call ${tool}: ${decision.reason}.`, inBatch);
  const status = state.route.deniedToolResponse === 'jsonrpc_error' ? 200 : 403;
  throw new McpGatewayError('access_denied', JSONRPC.serverError, description, { status, detail: decision.detail });
}
