import { declaresOnlyUtf8 } from '../protocol/media-type.ts';
import { toolsDeniedTo } from './argument-policy.ts';
import { Readable } from 'node:stream';
import { backendFailure, discardBody, type BackendResponse } from './backend-client.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { authorized, backendResponse, headerValue, exchangeHandler, runSteps, type ExchangeStep, type McpExchange } from './exchange.ts';
// The steps every transport shares, named `shared.…` in the step lists below beside this transport's own.
import * as shared from './exchange.ts';
import type { GatewayRuntime } from './gateway-runtime.ts';
import { checkMirroredHeaders } from './mcp-message.ts';
import { readMcpPost } from './read-mcp-post.ts';
import { isContentCoded, mediaType, relayResponse } from './relay-response.ts';
import type { RouteState } from './route-state.ts';
import { sessionNotFound, type ListedSession, type SessionBinding } from './session-bindings.ts';
import { trackOpenStream } from './stream-metrics.ts';
import { deniesNone, screenToolsListJson, screenToolsListSseEvent } from './tools-list-filter.ts';
import { SSE_EVENT_LIMIT_BYTES, sseEventTransform, type SseEvent } from './sse-events.ts';
import { McpGatewayError } from './gateway-error.ts';
import { enforceToolOfTask } from './enforce-tool-policy.ts';
import { cursorRefusal, REPLAYED_ANSWERS, taskAnswerScreen, taskUseOf, unknownTaskRefusal, withOpenedCursors, type TaskUse } from './task-bindings.ts';

/**
 * The Streamable HTTP transport, every revision: 2026-07-28 (stateless POSTs with mirrored `Mcp-Method`/`Mcp-Name`
 * headers) and 2025-03-26 … 2025-11-25 (POST, GET stream, DELETE, `Mcp-Session-Id`, `Last-Event-ID`). The gateway
 * forwards headers it does not own, so revision-specific headers pass through unchanged.
 *
 * @see MCP 2026-07-28 basic/transports; MCP 2025-11-25 basic/transports §Session Management, §Resumability.
 */
const SESSION_TTL_SECONDS = 24 * 3600;
const MCP_RESPONSE_TYPES = new Set(['application/json', 'text/event-stream']);

/** POST only: the capped JSON-RPC body, and the 2026-07-28 `Mcp-Method`/`Mcp-Name` headers must agree with it. */
export async function readJsonRpcBody(exchange: McpExchange): Promise<void> {
  const { runtime, state, request, draft } = exchange;
  if (request.method !== 'POST') return;
  const post = await readMcpPost(runtime, state, request, draft);
  checkMirroredHeaders(post, { method: headerValue(request.headers['mcp-method']), name: headerValue(request.headers['mcp-name']) });
  exchange.post = post;
  // A 2026-07-28 listening stream holds its sockets as a GET's does: it takes a place in the user's stream budget.
  if (listensForNotifications(exchange)) shared.refuseOverStreamBudget(exchange);
}

/**
 * A 2025-x `Mcp-Session-Id` must be one this user opened on this route (404 -32001 otherwise). The session's open
 * streams of this grant then live on to this token's end (open-streams.ts extendSession): a client that refreshed
 * keeps them, as one that reconnects its GET would.
 */
export function requireSessionOwner(exchange: McpExchange): void | Promise<void> {
  const sessionId = headerValue(exchange.request.headers['mcp-session-id']);
  // No session (every 2026-07-28 request): nothing to look up, and no promise for the step list to wait on.
  if (sessionId !== undefined) return checkSessionOwner(exchange, sessionId);
}

async function checkSessionOwner(exchange: McpExchange, sessionId: string): Promise<void> {
  const { claims } = authorized(exchange);
  const binding = await exchange.runtime.sessions.require('mcp-session', sessionId, { subject: claims.sub, clientId: claims.clientId }, exchange.state.route.path);
  exchange.sessionId = sessionId;
  exchange.sessionBoundAt = binding.createdAt;
  exchange.runtime.openStreams.extendSession(sessionId, claims);
}

/**
 * A task a request names (`tasks/get`, `tasks/result`, `tasks/update`, `tasks/cancel`) must be one this user's client
 * created on this route, or it is answered as an unknown task (HTTP 200, -32602); a batch runs only if every one is.
 * A POST that may create a task, or lists tasks, has its answer read (relayToClient, task-bindings.ts).
 */
export function requireTaskOwner(exchange: McpExchange): void | Promise<void> {
  const { post, request } = exchange;
  if (post === undefined) {
    // A resumed stream replays answers to requests made before (MCP 2025-11-25 transports, §Resumability): a task
    // created there is bound, a task list cut, as on the request's own stream.
    if (request.method === 'GET' && request.headers['last-event-id'] !== undefined) exchange.taskScreen = REPLAYED_ANSWERS;
    return;
  }
  const use = taskUseOf(post);
  // Most POSTs name no task and ask for none: nothing to look up or read, and no promise for the step list to wait on.
  if (use === undefined) return;
  exchange.taskScreen = use.screen;
  if (use.paging.length > 0) {
    const { claims } = authorized(exchange);
    const owner = { subject: claims.sub, clientId: claims.clientId };
    try {
      exchange.post = withOpenedCursors(post, use.paging, (sealed) => exchange.runtime.tasks.openCursor(exchange.state.route.path, owner, sealed));
    } catch (error) {
      if (!(error instanceof McpGatewayError)) throw error;
      exchange.draft.outcome = 'denied';
      exchange.draft.reason = 'task list cursor not handed to this caller';
      throw cursorRefusal(headerValue(request.headers['mcp-protocol-version']));
    }
  }
  if (use.named.length > 0) return checkTaskOwner(exchange, use.named);
}

async function checkTaskOwner(exchange: McpExchange, named: TaskUse['named']): Promise<void> {
  const call = authorized(exchange);
  const owner = { subject: call.claims.sub, clientId: call.claims.clientId };
  const inBatch = exchange.post?.batchRequestIds !== undefined;
  for (const { taskId, method } of named) {
    let tool: string | undefined;
    try {
      tool = await exchange.runtime.tasks.require(exchange.state.route.path, taskId, owner);
    } catch (error) {
      if (!(error instanceof McpGatewayError)) throw error;
      exchange.draft.outcome = 'denied';
      exchange.draft.reason = 'task not found for this caller';
      throw unknownTaskRefusal(method, headerValue(exchange.request.headers['mcp-protocol-version']));
    }
    // The tool's policy as it is now: one denied since the task was made does not hand over its result. Cancelling
    // one's own task stops the work, and stays open.
    if (tool !== undefined && method !== 'tasks/cancel') enforceToolOfTask(exchange.state, tool, call, exchange.draft, inBatch);
  }
}

/** A `tools/list` result, in whatever answer it comes (exchange.ts, reviewToolDefinitions), loses the tools this caller may not call. */
export function hideDeniedTools(exchange: McpExchange): void {
  const { caller } = authorized(exchange);
  const { route, argumentPolicies } = exchange.state;
  exchange.denied = toolsDeniedTo(route, argumentPolicies, caller);
}

/** A session the backend issues is bound to the user who opened it; a DELETEd one is forgotten. */
export function trackSessionLifecycle(exchange: McpExchange): void | Promise<void> {
  const response = backendResponse(exchange);
  const issued = headerValue(response.headers['mcp-session-id']);
  const opened = issued !== undefined && exchange.sessionId === undefined;
  const closed = exchange.request.method === 'DELETE' && exchange.sessionId !== undefined && response.statusCode < 300;
  // Most answers neither open nor close a session: no store call, no promise.
  if (opened || closed) return updateSessionBinding(exchange, response, opened ? issued : undefined, closed);
}

/** Binds the session the backend `issued` to its user, or forgets the session a DELETE `closed`. */
async function updateSessionBinding(exchange: McpExchange, response: BackendResponse, issued: string | undefined, closed: boolean): Promise<void> {
  const { runtime, state, sessionId } = exchange;
  try {
    if (issued !== undefined) {
      const { claims } = authorized(exchange);
      const binding = { subject: claims.sub, clientId: claims.clientId, route: state.route.path, createdAt: runtime.ctx.clock.now() };
      await runtime.sessions.bind('mcp-session', issued, binding, SESSION_TTL_SECONDS);
      // Not waited for: the new session's answer does not depend on the old ones' end.
      void endSurplusSessions(exchange, binding, issued);
    }
    if (closed && sessionId !== undefined) await runtime.sessions.forget('mcp-session', sessionId);
  } catch (error) {
    // The answer will not be relayed (the store is down): its body, which nobody would read, must not hold the
    // backend connection (a stream's, until the idle timeout).
    response.body.destroy();
    throw error;
  }
}

/**
 * A user keeps at most `rateLimit.sessionsPerUser` sessions on a route, whatever clients they open them with: the
 * one just opened beyond it ends the oldest of the opening client's own, and only when that client holds none the
 * user's oldest of another client. Most MCP clients never send the `DELETE` that ends a session, and a backend keeps
 * each one until told: one user opening sessions in a loop filled the sample server's table and every other user was
 * refused (503) until it restarted. Counted per client instead, a user with free client ids (any CIMD URL) had no
 * bound at all; ending another client's first, one client the user had authorised ended the user's other clients'
 * sessions. A session of the opening client is ended at the backend too — the `DELETE` its client never sent, with
 * that client's identity, the one this request carries; another client's is only forgotten here (its id 404s, its
 * streams are cut): a `DELETE` in the opening client's name is not the other client's, and the backend's own
 * limits end it. Failures are left to the binding's TTL: nothing here is the client's answer.
 */
async function endSurplusSessions(exchange: McpExchange, opened: SessionBinding, openedId: string): Promise<void> {
  const { runtime, state, backendHeaders = {} } = exchange;
  const { logger } = runtime.ctx;
  const keep = state.route.rateLimit.sessionsPerUser;
  let surplus: ListedSession[];
  try {
    const others = (await runtime.sessions.sessionsOf(opened, keep + SURPLUS_PAGE)).filter((session) => session.sessionId !== openedId);
    const over = others.length + 1 - keep;
    if (over <= 0) return;
    const own = others.filter((session) => session.clientId === opened.clientId);
    surplus = [...own, ...others.filter((session) => session.clientId !== opened.clientId)].slice(0, over);
  } catch (error) {
    logger.debug({ route: opened.route, reason: error instanceof Error ? error.message : 'unknown error' }, 'surplus MCP sessions not looked for; their bindings expire');
    return;
  }
  let forgotten = 0;
  let ended = 0;
  for (const session of surplus) {
    try {
      if (!(await runtime.sessions.forgetOwned(session, opened))) continue;
      forgotten += 1;
      if (session.clientId !== opened.clientId) continue;
      // Only what a DELETE needs: the user's identity and the forwarding facts (not the new session's request's own
      // headers: its origin, its idempotency key, its client's custom headers are not this request's).
      const headers: Record<string, string> = { 'mcp-session-id': session.sessionId };
      for (const name of SURPLUS_DELETE_HEADERS) if (backendHeaders[name] !== undefined) headers[name] = backendHeaders[name];
      const answer = await state.backend.send({ url: state.route.backend, method: 'DELETE', headers, body: null, signal: AbortSignal.timeout(SURPLUS_DELETE_TIMEOUT_MS) });
      // Its body is not read: discarded (bounded), so the connection goes back to the route's pool.
      discardBody(answer.body);
      if (answer.statusCode < 300) ended += 1;
    } catch (error) {
      logger.debug({ route: opened.route, reason: error instanceof Error ? error.message : 'unknown error' }, 'a surplus MCP session not ended at the backend');
    }
  }
  if (forgotten > 0) logger.info({ route: opened.route, forgotten, endedAtBackend: ended }, 'ended the oldest MCP sessions of a user past rateLimit.sessionsPerUser');
}

/** How many of a user's sessions one look reads beyond the limit (and so may end at once, after the limit was lowered). */
const SURPLUS_PAGE = 16;

/** The headers of the DELETE the gateway sends for a surplus session: the identity, forwarding and protocol version. */
const SURPLUS_DELETE_HEADERS = ['authorization', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'forwarded', 'accept-encoding', 'mcp-protocol-version'];

/** How long the backend has to answer the DELETE of a surplus session. */
const SURPLUS_DELETE_TIMEOUT_MS = 5_000;

/**
 * A backend that refuses the gateway's identity, or answers with something that is not MCP, is a 502 — except a 401
 * `insufficient_claims` that is a step-up the user can complete (backend-step-up.ts): the client gets the gateway's
 * own 401 challenge and re-authorizes. Not MCP:
 * - a redirect: the client would follow it wherever the backend points (a cloud metadata address, an internal host);
 * - a success answering a POST with a body that is neither JSON nor SSE (202 and 204 carry none), whatever the 2xx:
 *   a client reads a 201 as a 200, so an unscreened `tools/list` could ride on it;
 * - a success answering the GET stream that is not SSE: a client may read it as SSE without looking at the type
 *   (the TypeScript SDK does), so it was a stream the `tools/list` screen and grant revocation never saw.
 */
export function refuseNonMcpAnswer(exchange: McpExchange): void | Promise<void> {
  const response = backendResponse(exchange);
  const status = response.statusCode;
  if ((status >= 300 && status < 400) || status === 401 || status === 403) return shared.refuseRedirectOrRefusal(exchange, response);
  if (status < 200 || status >= 300) return;
  const method = exchange.request.method;
  if (method === 'POST' && status !== 202 && status !== 204 && !MCP_RESPONSE_TYPES.has(mediaType(response.headers))) {
    throw notMcp(exchange, response, 'something that is not MCP');
  }
  if (method === 'GET' && mediaType(response.headers) !== 'text/event-stream') throw notMcp(exchange, response, 'a stream that is not SSE');
  // Screened as UTF-8 (the tools/list filter, tool pinning): labelled in another charset, a client decoding by the label
  // (the Python SDK's SSE reader) read other events from the same bytes — under `utf-7`, a line break inside an `id`
  // field the gateway passed on whole, and after it an unscreened `tools/list`.
  // (A 202 or 204 carries no message: whatever a server labels its empty body, e.g. Tomcat's ISO-8859-1, is no concern.)
  if (status !== 202 && status !== 204 && !declaresOnlyUtf8(response.headers['content-type'])) throw notMcp(exchange, response, 'a charset other than UTF-8');
}

function notMcp(exchange: McpExchange, response: BackendResponse, what: string): ProtocolError {
  discardBody(response.body);
  return new ProtocolError('bad_gateway', `The backend of ${exchange.state.route.path} answered with ${what}.`, { detail: `backend status ${response.statusCode}` });
}

/** In order; the README table of src/proxy is checked against these names. */
export const streamableHttpSteps: readonly ExchangeStep[] = [
  shared.authenticateCaller,
  readJsonRpcBody,
  requireSessionOwner,
  requireTaskOwner,
  shared.enforcePinnedTools,
  shared.enforcePerToolPolicy,
  hideDeniedTools,
  shared.forwardIdentity,
  shared.reviewToolDefinitions,
  shared.forwardToBackend({ url: (exchange) => exchange.state.route.backend, getOpensStream: true }),
  trackSessionLifecycle,
  refuseNonMcpAnswer,
  shared.concealBackendFailure,
];

/**
 * The audit record's `method` of a request that carries no JSON-RPC message: the stream a client listens on (GET) and
 * the end of its session (DELETE), named as a legacy stream is (`sse/connect`); without one they could not be told
 * apart from each other, or found, in the trail.
 */
const NO_MESSAGE_METHODS: Readonly<Record<string, string>> = { GET: 'stream/listen', DELETE: 'session/delete' };

export function streamableHttpHandler(runtime: GatewayRuntime, state: RouteState) {
  return exchangeHandler(runtime, state, async function handleStreamableHttp(exchange) {
    const label = NO_MESSAGE_METHODS[exchange.request.method];
    if (label !== undefined) exchange.draft.method = label;
    await runSteps(streamableHttpSteps, exchange);
    await relayToClient(exchange);
  });
}

/** Whether the request opens a stream to listen on: a GET, or a POST whose message is a `subscriptions/listen`. */
function listensForNotifications(exchange: McpExchange): boolean {
  if (exchange.request.method === 'GET') return true;
  // Anywhere in a batch: a lenient backend runs a batch whatever the revision.
  return exchange.post?.messages.some((message) => 'method' in message && message.method === 'subscriptions/listen') === true;
}

/**
 * The answer streamed to the client (SSE counted as an open stream), a `tools/list` filtered and tasks bound or
 * listed (task-bindings.ts) on the way.
 */
async function relayToClient(exchange: McpExchange): Promise<void> {
  const { runtime, state, reply, draft } = exchange;
  const response = backendResponse(exchange);
  // Most answers are not screened: no promise for them.
  const screens = answerScreens(exchange);
  const body = screens === undefined ? response.body : await screenedBody(state, response, screens);
  if (response.statusCode >= 200 && response.statusCode < 300 && mediaType(response.headers) === 'text/event-stream') {
    // A stream a client listens on (a GET, a 2026-07-28 `subscriptions/listen`) ends with its token; a POST's answer is
    // bounded by its request (open-streams.ts).
    const { claims } = authorized(exchange);
    const exp = listensForNotifications(exchange) ? claims.exp : undefined;
    const sessionCheckedAt = await sessionStillAdmitted(exchange);
    const caller = { grantId: claims.grantId, exp, sessionId: exchange.sessionId, sessionCheckedAt, kid: claims.kid, route: state.route.path, scopes: claims.scopes };
    shared.refuseStreamNoLongerAdmitted(exchange, caller);
    trackOpenStream(reply, runtime.metrics, { route: state.route.path, transport: 'streamable-http' });
    runtime.openStreams.track(reply.raw, draft, caller);
  }
  await relayResponse(reply, response, draft, state.route, body, { oneMessageUnlessSse: exchange.post !== undefined });
}

/**
 * A stream of a session that ended lately on this replica's hearing (open-streams.ts): its backend may have answered
 * it after the session's DELETE (a GET sent just before it), or its id may have been issued again since. The store
 * says which: the binding that admitted the request still under the id is a live session (the time it was seen is the
 * stream's to be judged by), anything else is refused as the ended session is. Undefined for every other stream, with
 * no read.
 */
async function sessionStillAdmitted(exchange: McpExchange): Promise<number | undefined> {
  const { runtime, sessionId } = exchange;
  if (sessionId === undefined || !runtime.openStreams.endedLately(sessionId)) return undefined;
  const checkedAt = runtime.ctx.clock.now();
  let current: SessionBinding | undefined;
  try {
    current = await runtime.sessions.current('mcp-session', sessionId);
  } catch (error) {
    backendResponse(exchange).body.destroy();
    throw error;
  }
  if (current === undefined || current.createdAt !== exchange.sessionBoundAt) {
    backendResponse(exchange).body.destroy();
    exchange.draft.reason = 'session ended';
    throw sessionNotFound();
  }
  return checkedAt;
}

/** One reading of an answer: a JSON body whole, or an SSE stream event by event (null leaves an event out). */
interface AnswerScreen {
  json(body: Buffer): Promise<Buffer>;
  event(event: SseEvent): SseEvent | null | Promise<SseEvent | null>;
}

/** The screens this answer passes: the tools/list screen (a caller denied tools, or pinning) and the task screen. */
function answerScreens(exchange: McpExchange): AnswerScreen[] | undefined {
  const { denied, reviewTools: review, taskScreen } = exchange;
  const toolsScreened = !deniesNone(denied) || review !== undefined;
  // Most answers pass unscreened: nothing allocated for them.
  if (!toolsScreened && taskScreen === undefined) return undefined;
  const screens: AnswerScreen[] = [];
  if (toolsScreened) screens.push({ json: (body) => screenToolsListJson(body, denied, review), event: screenToolsListSseEvent(denied, review) });
  if (taskScreen !== undefined) {
    const { claims } = authorized(exchange);
    screens.push(taskAnswerScreen(exchange.runtime.tasks, exchange.state.route.path, { subject: claims.sub, clientId: claims.clientId }, taskScreen));
  }
  return screens;
}

/** Each screen in turn over one event; the first to leave it out ends the turn. */
function screenEvent(screens: readonly AnswerScreen[], event: SseEvent, from = 0): SseEvent | null | Promise<SseEvent | null> {
  let current: SseEvent | null = event;
  for (let index = from; index < screens.length && current !== null; index += 1) {
    const next = screens[index]!.event(current);
    if (next instanceof Promise) return next.then((screened) => (screened === null ? null : screenEvent(screens, screened, index + 1)));
    current = next;
  }
  return current;
}

/**
 * Screens an answer (relayToClient calls it only when some screen applies): any answer, since a client takes a
 * response by its id wherever it comes (exchange.ts). A JSON answer is read whole, bounded like one event of a
 * stream, and passed on as it came unless a screen changed it.
 */
async function screenedBody(state: RouteState, response: Awaited<ReturnType<RouteState['backend']['send']>>, screens: readonly AnswerScreen[]): Promise<Readable> {
  // Any 2xx: a client reads a result from a 201 as from a 200.
  if (response.statusCode < 200 || response.statusCode >= 300) return response.body;
  const type = mediaType(response.headers);
  if ((type === 'text/event-stream' || type === 'application/json') && isContentCoded(response.headers)) {
    discardBody(response.body);
    throw new ProtocolError('bad_gateway', `The backend of ${state.route.path} answered compressed, which the gateway cannot screen.`);
  }
  if (type === 'text/event-stream') return response.body.pipe(sseEventTransform((event) => screenEvent(screens, event)));
  if (type !== 'application/json') return response.body;
  let body: Buffer;
  try {
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of response.body) {
      received += (chunk as Buffer).length;
      // Read whole to be screened: bounded like one event of a stream (sse-events.ts).
      if (received > SSE_EVENT_LIMIT_BYTES) {
        response.body.destroy();
        throw new ProtocolError('bad_gateway', `The backend of ${state.route.path} answered with a message larger than the gateway screens.`, {
          detail: `JSON answer over ${SSE_EVENT_LIMIT_BYTES} bytes`,
        });
      }
      chunks.push(chunk as Buffer);
    }
    body = Buffer.concat(chunks);
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw backendFailure(state.route, error);
  }
  // An empty 2xx (a 202 to a notification sent as JSON) carries nothing to screen.
  if (body.length === 0) return Readable.from([]);
  for (const screen of screens) body = await screen.json(body);
  return Readable.from([body]);
}
