import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BackendResponse } from './backend-client.ts';
import { enforceToolPinning, toolListReviewer } from './enforce-tool-pinning.ts';
import { enforceToolPolicy } from './enforce-tool-policy.ts';
import { abortOnClientClose, authorizeRequest, backendHeaders, type AuthorizedCall, type GatewayRuntime } from './gateway-runtime.ts';
import type { McpPost } from './mcp-message.ts';
import { auditDraft, type AuditDraft } from './request-audit.ts';
import type { RouteState } from './route-state.ts';
import type { ReviewTools } from './tools-list-filter.ts';

/**
 * One proxied request as it passes the gateway's steps. Each transport (streamable-http.ts, legacy-sse.ts) is an
 * exported list of named steps run in order over one exchange, the way node-oidc-provider composes its endpoints:
 * the order of the security checks is the list a reader sees, each step is a function with its own test, and the
 * README table of each transport is checked against the list (test/proxy/transport-steps.test.ts).
 *
 * A step either fills in a field for later steps or throws a ProtocolError (the route's error renderer answers it).
 */
export interface McpExchange {
  readonly runtime: GatewayRuntime;
  readonly state: RouteState;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly draft: AuditDraft;
  /** Set by authenticateCaller. */
  call?: AuthorizedCall;
  /** The JSON-RPC body of a POST, once read. */
  post?: McpPost;
  /** The client's `Mcp-Session-Id` (2025-x) or the gateway's legacy SSE session id. */
  sessionId?: string;
  /** Legacy SSE: the backend's message URL bound to the session. */
  backendMessageUrl?: string;
  /** Tools this caller may not see: removed from `tools/list` answers. */
  denied: ReadonlySet<string>;
  /** Set by reviewToolDefinitions: records a `tools/list` answer's definitions, names the ones to hide. */
  reviewTools?: ReviewTools;
  /** The backend's answer, once forwarded. */
  response?: BackendResponse;
}

export type ExchangeStep = (exchange: McpExchange) => void | Promise<void>;

export function startExchange(runtime: GatewayRuntime, state: RouteState, request: FastifyRequest, reply: FastifyReply): McpExchange {
  return { runtime, state, request, reply, draft: auditDraft(request), denied: NO_TOOLS };
}

export async function runSteps(steps: readonly ExchangeStep[], exchange: McpExchange): Promise<void> {
  for (const step of steps) await step(exchange);
}

const NO_TOOLS: ReadonlySet<string> = new Set();

/** Steps after this one may rely on `exchange.call`. */
export function authorized(exchange: McpExchange): AuthorizedCall {
  if (exchange.call === undefined) throw new Error(`step order: ${exchange.request.url} has no authorized caller yet`);
  return exchange.call;
}

/** Origin allow-list, bearer token (signature, `aud` = this route, scope, expiry, grant not revoked), rate limit. */
export async function authenticateCaller(exchange: McpExchange): Promise<void> {
  exchange.call = await authorizeRequest(exchange.runtime, exchange.state, exchange.request, exchange.draft, { rateLimit: true });
}

/**
 * Per-tool policy over every `tools/call` of the body (a batch cannot smuggle a denied call behind an allowed one):
 * scopes, groups, then the CEL argument policy, which sees the tool's approved (pinned) annotations only.
 */
export async function enforcePerToolPolicy(exchange: McpExchange): Promise<void> {
  const { runtime, state, post } = exchange;
  if (post === undefined) return;
  const annotationsOf = async (tool: string) =>
    state.route.toolPinning === 'off' ? {} : runtime.toolPins.approvedAnnotations(state.route.path, tool);
  await enforceToolPolicy(state, post, authorized(exchange), exchange.draft, annotationsOf);
}

/** Pinned tool definitions: a `tools/call` of a tool whose definition is not the approved one (see enforce-tool-pinning.ts). */
export async function enforcePinnedTools(exchange: McpExchange): Promise<void> {
  if (exchange.post !== undefined) await enforceToolPinning(exchange.runtime, exchange.state.route, exchange.post, exchange.draft);
}

/**
 * Whether the body asks for `tools/list`, alone or inside a batch (2025-03-26): a batch must not be a way around the
 * `tools/list` filter and review.
 */
export const listsTools = (post: McpPost | undefined): boolean =>
  post !== undefined && post.messages.some((message) => 'method' in message && message.method === 'tools/list');

/** A `tools/list` answer has its definitions checked against the pins on the way back. */
export function reviewToolDefinitions(exchange: McpExchange): void {
  if (listsTools(exchange.post)) exchange.reviewTools = toolListReviewer(exchange.runtime, exchange.state.route, exchange.draft);
}

/**
 * The backend request: the client's headers minus credentials and address claims, plus the gateway's identity
 * (assertion or broker token, never the client's token); cancelled when the client goes away.
 */
export function forwardToBackend(options: { url: (exchange: McpExchange) => string; accept?: string }): ExchangeStep {
  return async function forwardToBackend(exchange) {
    const { runtime, state, request, reply, post } = exchange;
    const headers = await backendHeaders(runtime, state, request, authorized(exchange));
    if (options.accept !== undefined) headers.accept = options.accept;
    exchange.response = await state.backend.send({
      url: options.url(exchange),
      method: request.method as 'GET' | 'POST' | 'DELETE',
      headers,
      body: post?.raw ?? null,
      signal: abortOnClientClose(reply),
    });
  };
}

export function backendResponse(exchange: McpExchange): BackendResponse {
  if (exchange.response === undefined) throw new Error(`step order: ${exchange.request.url} has no backend response yet`);
  return exchange.response;
}

export const headerValue = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);
