import { declaresOnlyUtf8 } from '../protocol/media-type.ts';
import { toolsDeniedTo } from './argument-policy.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { RouteConfig } from '../config/schema.ts';
import { httpRouteReaching } from '../config/http-route-overlap.ts';
import { authorized, backendResponse, exchangeHandler, headerValue, runSteps, type ExchangeStep, type McpExchange } from './exchange.ts';
import { checkMirroredHeaders } from './mcp-message.ts';
// The steps every transport shares, named `shared.…` in the step lists below beside this transport's own.
import * as shared from './exchange.ts';
import type { GatewayRuntime } from './gateway-runtime.ts';
import { readMcpPost } from './read-mcp-post.ts';
import { isContentCoded, mediaType, relayResponse } from './relay-response.ts';
import type { RouteState } from './route-state.ts';
import { sessionNotFound } from './session-bindings.ts';
import { discardBody } from './backend-client.ts';
import { confinedMessageUrl } from './message-url.ts';
import { trackOpenStream } from './stream-metrics.ts';
import { sseEventTransform, type SseEvent } from './sse-events.ts';
import { deniesNone, screenToolsListSseEvent } from './tools-list-filter.ts';
import { toolListReviewer } from './enforce-tool-pinning.ts';
import { JSONRPC, McpGatewayError } from './gateway-error.ts';
import { taskUseOf } from './task-bindings.ts';

/**
 * The legacy HTTP+SSE transport (MCP 2024-11-05): the client GETs an SSE stream whose first event, `endpoint`, names
 * the URL to POST messages to; responses come back on the stream.
 *
 * The backend's endpoint URL is never shown to the client: the gateway issues its own session id, records which
 * user opened it and which backend message URL it maps to (in the store, so the POST may land on any replica), and
 * rewrites the `endpoint` event to the gateway's public URL.
 *
 * @see MCP 2024-11-05 basic/transports §HTTP with SSE
 */
export const LEGACY_SSE_SUFFIX = '/sse';
export const LEGACY_MESSAGES_SUFFIX = '/messages';
const SESSION_TTL_SECONDS = 24 * 3600;
/** The bytes of an `endpoint` event's name: events holding them are read even once the stream is passed through. */
const ENDPOINT_EVENT_NAME = Buffer.from('endpoint');

/** The backend must answer the stream request with an SSE stream. */
export function requireBackendStream(exchange: McpExchange): void {
  const response = backendResponse(exchange);
  // Its events are read on the way (the `endpoint` rewrite, the tools/list screen): a compressed stream cannot be.
  // Nor in another charset than UTF-8, which its events are read in (a client decoding by the label read others).
  if (response.statusCode !== 200 || mediaType(response.headers) !== 'text/event-stream' || isContentCoded(response.headers) || !declaresOnlyUtf8(response.headers['content-type'])) {
    discardBody(response.body);
    throw new ProtocolError('bad_gateway', `The backend of ${exchange.state.route.path} did not open an SSE stream.`);
  }
}

/** In order, for `GET <route>/sse`; the README table of src/proxy is checked against these names. */
export const legacySseStreamSteps: readonly ExchangeStep[] = [
  shared.authenticateCaller,
  shared.forwardIdentity,
  shared.forwardToBackend({ url: (exchange) => exchange.state.legacySseUrl, accept: 'text/event-stream', getOpensStream: true }),
  requireBackendStream,
];

export function legacySseStreamHandler(runtime: GatewayRuntime, state: RouteState) {
  return exchangeHandler(runtime, state, async function handleLegacySseStream(exchange) {
    exchange.draft.method = 'sse/connect';
    await runSteps(legacySseStreamSteps, exchange);
    await relayLegacyStream(exchange);
  });
}

/**
 * The stream to the client under a gateway-issued session id: the `endpoint` event rewritten to the gateway's
 * messages URL once the session is bound to this user, `tools/list` answers filtered (they arrive on this stream,
 * not on the POST), the session forgotten when the stream closes.
 */
function relayLegacyStream(exchange: McpExchange): Promise<void> {
  const { runtime, state, reply, draft } = exchange;
  const response = backendResponse(exchange);
  const call = authorized(exchange);
  const sessionId = runtime.ctx.random.token(24);
  // The stream is the session: it ends a grace after its token (the route's idle timeout), unless its messages,
  // posted with fresh tokens of the grant, move it on (requireLegacySessionOwner; open-streams.ts).
  const { grantId, exp, kid, scopes } = call.claims;
  const caller = { grantId, exp, graceMs: state.route.timeouts.idleStreamMs, sessionId, kid, route: state.route.path, scopes };
  shared.refuseStreamNoLongerAdmitted(exchange, caller);
  trackOpenStream(reply, runtime.metrics, { route: state.route.path, transport: 'sse' });
  runtime.openStreams.track(reply.raw, draft, caller);

  const publicMessagesUrl = `${runtime.ctx.publicUrl}${state.route.path}${LEGACY_MESSAGES_SUFFIX}?sessionId=${sessionId}`;
  const bind = (backendMessageUrl: string) =>
    runtime.sessions.bind(
      'legacy-sse-session',
      sessionId,
      { subject: call.claims.sub, clientId: call.claims.clientId, route: state.route.path, createdAt: runtime.ctx.clock.now(), backendMessageUrl },
      SESSION_TTL_SECONDS,
    );
  reply.raw.on('close', () => {
    runtime.sessions.forget('legacy-sse-session', sessionId).catch(() => {});
  });

  const review = toolListReviewer(runtime, state.route, draft);
  const endpoint = endpointRewriter(state.legacySseUrl, publicMessagesUrl, bind, runtime.ctx.config.routes);
  // What this caller is denied, judged again when a configuration reload replaces a field the screen reads (tools,
  // scopes, requiredScopes, deniedToolResponse: src/app/reload-config.ts assigns each anew): the stream outlives the
  // policy it opened under, as a Streamable HTTP session does, whose answers are screened by their request's policy.
  let screenedFor: readonly unknown[] = [];
  let screen: ((event: SseEvent) => SseEvent | null | Promise<SseEvent | null>) | undefined;
  const currentScreen = () => {
    const { tools, scopes, requiredScopes, deniedToolResponse } = state.route;
    if (screenedFor[0] !== tools || screenedFor[1] !== scopes || screenedFor[2] !== requiredScopes || screenedFor[3] !== deniedToolResponse) {
      screenedFor = [tools, scopes, requiredScopes, deniedToolResponse];
      const denied = toolsDeniedTo(state.route, state.argumentPolicies, call.caller);
      screen = deniesNone(denied) && review === undefined ? undefined : screenToolsListSseEvent(denied, review);
    }
    return screen;
  };
  const rewrite = (event: SseEvent) => {
    const passed = endpoint.rewrite(event);
    if (passed === null || passed instanceof Promise) return passed;
    const current = currentScreen();
    return current === undefined ? passed : current(passed);
  };
  // Every message's response travels on this stream: the one parsing stage counts the bytes itself, and steps aside
  // once the endpoint is rewritten while there is nothing to screen (asked again at each event's end, so a reload
  // that gives the route a policy brings it back).
  const body = response.body.pipe(
    sseEventTransform(rewrite, {
      onBytes: (bytes) => void (draft.bytesOut += bytes),
      passThroughAfter: () => endpoint.rewritten() && currentScreen() === undefined,
      readAgainOn: ENDPOINT_EVENT_NAME,
    }),
  );
  return relayResponse(reply, response, draft, state.route, body, { bytesCounted: true });
}

/**
 * `?sessionId=` must name a legacy session this user opened on this route (404 -32001 otherwise). The session's stream,
 * if this grant opened it, then lives on to this token's end and grace (open-streams.ts extendSession).
 */
export async function requireLegacySessionOwner(exchange: McpExchange): Promise<void> {
  const sessionId = (exchange.request.query as { sessionId?: unknown }).sessionId;
  if (typeof sessionId !== 'string' || sessionId === '') throw sessionNotFound();
  const { claims } = authorized(exchange);
  const binding = await exchange.runtime.sessions.require('legacy-sse-session', sessionId, { subject: claims.sub, clientId: claims.clientId }, exchange.state.route.path);
  exchange.sessionId = sessionId;
  exchange.backendMessageUrl = binding.backendMessageUrl;
  exchange.runtime.openStreams.extendSession(sessionId, claims);
}

/**
 * The capped JSON-RPC body of the message. The legacy transport has no `Mcp-Method`/`Mcp-Name`, but they are
 * forwarded like any header, so when sent they must agree with the body, as on Streamable HTTP: a backend (or a proxy
 * behind the gateway) routing or authorizing on the header must not see another call than the one judged.
 */
export async function readLegacyMessage(exchange: McpExchange): Promise<void> {
  const { request } = exchange;
  const post = await readMcpPost(exchange.runtime, exchange.state, request, exchange.draft);
  checkMirroredHeaders(post, { method: headerValue(request.headers['mcp-method']), name: headerValue(request.headers['mcp-name']) });
  exchange.post = post;
}

/** In order, for `POST <route>/messages?sessionId=`; the README table of src/proxy is checked against these names. */
export const legacySseMessageSteps: readonly ExchangeStep[] = [
  shared.authenticateCaller,
  requireLegacySessionOwner,
  readLegacyMessage,
  refuseTasks,
  shared.enforcePinnedTools,
  shared.enforcePerToolPolicy,
  shared.forwardIdentity,
  shared.forwardToBackend({ url: messageUrlOf }),
  refuseBackendRedirectOrRefusal,
  shared.concealBackendFailure,
];

/**
 * MCP tasks (2025-11-25 and later) are served on a route's Streamable HTTP endpoint, where the gateway binds each
 * task to its caller (task-bindings.ts). Here a task's answers come on the session's stream, perhaps through another
 * replica, out of sight of the request that asked: a task made here could not be bound, and one made there could be
 * named from here (the MCP SDK's task store shows tasks made without a session to every session). Clients of this
 * transport (2024-11-05) do not know tasks.
 */
export function refuseTasks(exchange: McpExchange): void {
  if (exchange.post === undefined || taskUseOf(exchange.post) === undefined) return;
  exchange.draft.reason = 'tasks on the legacy transport';
  throw new McpGatewayError('invalid_request', JSONRPC.invalidRequest, `MCP tasks are served on ${exchange.state.route.path} over Streamable HTTP only, where each task is bound to its caller.`);
}

/**
 * The backend's answer to a message POST is relayed (a `202 Accepted`, of any type: the SDKs send `text/plain`),
 * except a redirect or a refusal of the gateway's identity (exchange.ts refuseRedirectOrRefusal).
 */
export function refuseBackendRedirectOrRefusal(exchange: McpExchange): void | Promise<void> {
  return shared.refuseRedirectOrRefusal(exchange, backendResponse(exchange));
}

/** Checked again on use: the binding comes from the shared store, which another replica or version may have written. */
function messageUrlOf(exchange: McpExchange): string {
  const url = exchange.state.messageUrl(exchange.backendMessageUrl ?? exchange.state.legacySseUrl);
  if (!url) throw new ProtocolError('bad_gateway', 'The backend named a message endpoint outside its own base path.');
  return url;
}

export function legacySseMessageHandler(runtime: GatewayRuntime, state: RouteState) {
  return exchangeHandler(runtime, state, async function handleLegacySseMessage(exchange) {
    await runSteps(legacySseMessageSteps, exchange);
    await relayResponse(exchange.reply, backendResponse(exchange), exchange.draft, state.route, undefined, { oneMessageUnlessSse: true });
  });
}

/** The longest message URL a backend's `endpoint` event may name (8 KiB, as many servers' request-line limit). */
const MAX_MESSAGE_URL_LENGTH = 8 * 1024;

/**
 * Rewrites the `endpoint` event (the first event; comments before it pass through) and returns every later event as
 * it is. The binding is written before the rewritten event is released, so a client cannot POST to a session the
 * store does not know yet.
 */
function endpointRewriter(
  backendSseUrl: string,
  publicMessagesUrl: string,
  bind: (backendMessageUrl: string) => Promise<void>,
  routes: readonly RouteConfig[],
): { rewrite: (event: SseEvent) => SseEvent | null | Promise<SseEvent>; rewritten: () => boolean } {
  let rewritten = false;
  const rewrite = (event: SseEvent): SseEvent | null | Promise<SseEvent> => {
    // A second `endpoint` event would show the client the backend's own message URL (its host, its session id),
    // which the gateway never shows; the session's URL is the one bound.
    if (rewritten) return event.event === 'endpoint' ? null : event;
    if (event.event !== 'endpoint' || event.data.trim() === '') {
      throw new ProtocolError('bad_gateway', 'The backend SSE stream did not start with an endpoint event.');
    }
    // The URL is the request line of every message the session posts, and it is remembered (the session's binding,
    // the route's and the backend client's URL caches): one of megabytes no server takes kept megabytes per session
    // after it ended. Node refuses a header section over 16 KiB, request line included.
    if (event.data.length > MAX_MESSAGE_URL_LENGTH) {
      throw new ProtocolError('bad_gateway', 'The backend named a message endpoint longer than any server accepts.', {
        detail: `endpoint event of ${event.data.length} characters; at most ${MAX_MESSAGE_URL_LENGTH}`,
      });
    }
    // A backend may only route messages to itself, never make the gateway POST elsewhere (SSRF).
    const target = confinedMessageUrl(backendSseUrl, event.data.trim());
    if (!target) throw new ProtocolError('bad_gateway', 'The backend named a message endpoint outside its own base path.');
    // Nor to where a plain HTTP route also reaches: there the session's messages would skip this route's policy.
    const around = httpRouteReaching(routes, target);
    if (around !== undefined) {
      throw new ProtocolError('bad_gateway', 'The backend named a message endpoint that another route also reaches.', {
        detail: `message endpoint ${new URL(target).pathname} is below the backend of the http route ${around.path}; point that route elsewhere or set its allowMcpBackendOverlap`,
      });
    }
    rewritten = true;
    return bind(target).then(() => ({ ...event, data: publicMessagesUrl }));
  };
  return { rewrite, rewritten: () => rewritten };
}
