import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import { ProtocolError } from '../errors/protocol-error.ts';
import { insufficientScope, unauthorized } from '../errors/bearer-challenge.ts';
import { runSteps as runHandlerSteps, type HandlerStep, type StepContext } from '../server/handler-steps.ts';
import type { RequestTrace, ServerSpanStart } from '../observability/tracing.ts';
import { discardBody, type BackendResponse } from './backend-client.ts';
import { enforceToolPinning, toolListReviewer } from './enforce-tool-pinning.ts';
import { enforceToolPolicy } from './enforce-tool-policy.ts';
import { abortOnClientClose, authorizeRequest, backendHeaders, type AuthorizedCall, type GatewayRuntime } from './gateway-runtime.ts';
import type { McpPost } from './mcp-message.ts';
import { auditDraft, type AuditDraft } from './request-audit.ts';
import type { RouteState } from './route-state.ts';
import type { ApprovedTool } from './tool-pins.ts';
import { revocationsUnknown } from './verify-access-token.ts';
import { sessionNotFound } from './session-bindings.ts';
import type { StreamCaller, StreamCutReason } from './open-streams.ts';
import type { TaskScreen } from './task-bindings.ts';
import { NO_TOOLS_DENIED, type DeniedTools, type ReviewTools } from './tools-list-filter.ts';
import { backendSpan, mcpSpanStart, requestTrace } from './request-trace.ts';

/**
 * One proxied request as it passes the gateway's steps. Each transport (streamable-http.ts, legacy-sse.ts,
 * http-route.ts) is an exported list of named steps run in order over one exchange (../server/handler-steps.ts):
 * the order of the security checks is the list a reader sees, each step is a function with its own test, and the
 * README table of each transport is checked against the list (test/architecture/handler-steps.test.ts).
 *
 * A step either fills in a field for later steps or throws a ProtocolError (the route's error renderer answers it).
 */
export interface McpExchange extends StepContext {
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
  /** When the binding the request was admitted under was made (a Streamable HTTP session), epoch ms. */
  sessionBoundAt?: number;
  /** Legacy SSE: the backend's message URL bound to the session. */
  backendMessageUrl?: string;
  /** The answer's requests that may create a task or list tasks (task-bindings.ts); most POSTs have none. */
  taskScreen?: TaskScreen;
  /** Tools this caller may not see: removed from `tools/list` answers. */
  denied: DeniedTools;
  /** Plain HTTP route: the backend URL, confined under the backend's base path. */
  backendUrl?: string;
  /** Set by forwardIdentity: the backend request's headers, with the gateway's identity instead of the client's token. */
  backendHeaders?: Record<string, string>;
  /** Plain HTTP route: the client's body as it streams on, held to the body cap and deadline. */
  upload?: Readable;
  /** Plain HTTP route: a form body, read whole to be screened for a token before it is forwarded (http-route.ts). */
  heldBody?: Buffer;
  /**
   * Plain HTTP route: after the backend request failed mid-upload, reads the rest of the body through the cap and
   * says whether the body was over it (then the client gets that 413, not a 502; see http-route.ts).
   */
  uploadOverLimit?: () => Promise<ProtocolError | undefined>;
  /** Set by reviewToolDefinitions: records a `tools/list` answer's definitions, names the ones to hide. */
  reviewTools?: ReviewTools;
  /** The backend's answer, once forwarded. */
  response?: BackendResponse;
  /** The request's trace when tracing is on (request-trace.ts); every step then runs in a span of its own. */
  readonly trace?: RequestTrace;
  /** The server span's name and attributes, once it started. */
  spanStart?: ServerSpanStart;
}

export type ExchangeStep = HandlerStep<McpExchange>;

export function startExchange(runtime: GatewayRuntime, state: RouteState, request: FastifyRequest, reply: FastifyReply): McpExchange {
  const trace = requestTrace(request);
  return { runtime, state, request, reply, draft: auditDraft(request), denied: NO_TOOLS_DENIED, ...(trace === undefined ? {} : { trace }) };
}

/**
 * A route handler that runs an exchange to its answer without handing Fastify a promise. Given an async handler,
 * Fastify waits on the promise, which resolves with the reply, and then on the reply itself: `reply.then` watches
 * the response to its end (an end-of-stream watcher, eight closures), so an open SSE stream held that watcher for its
 * whole life and every request paid two more microtask turns. Every exchange sends its own answer (the relay, or the
 * route's error handler), so nothing is waited for: a failure is passed to the error handler the way Fastify passes
 * a rejected handler's, and anything that fails in that is logged and ends the response rather than go unhandled.
 * `run` must resolve with nothing: resolved with the reply (a thenable), its promise would call `reply.then` again
 * (test/proxy/stream-lifecycle.test.ts fails if any proxied request does).
 */
export function exchangeHandler(
  runtime: GatewayRuntime,
  state: RouteState,
  run: (exchange: McpExchange) => Promise<void>,
): (request: FastifyRequest, reply: FastifyReply) => void {
  return function handleExchange(request, reply) {
    run(startExchange(runtime, state, request, reply)).then(undefined, (error: unknown) => failExchange(request, reply, error));
  };
}

function failExchange(request: FastifyRequest, reply: FastifyReply, error: unknown): void {
  try {
    if (reply.sent) {
      request.log.error({ err: error }, 'exchange failed after its answer was sent');
      return;
    }
    // Only an Error takes Fastify's error path when sent; any other thrown value travels as the cause of one (never
    // through String(), which can itself throw).
    reply.send(error instanceof Error ? error : Object.assign(new Error('The exchange failed with a value that is not an Error.'), { cause: error }));
  } catch (again) {
    request.log.error({ err: again }, 'exchange failed while its error was answered');
    reply.raw.destroy();
  }
}

/** The steps in order; traced, each in a span, when the request is traced (untraced, nothing is added to the path). */
export function runSteps(steps: readonly ExchangeStep[], exchange: McpExchange): Promise<void> {
  return exchange.trace === undefined ? runHandlerSteps(steps, exchange) : runHandlerSteps(steps, exchange, tracedStep);
}

/**
 * Steps that run before the MCP message is known. The server span waits for the message (its `params._meta` may name
 * the parent); these are recorded beneath it once it starts.
 */
export const BEFORE_MESSAGE: ReadonlySet<string> = new Set(['confineBackendPath', 'authenticateCaller', 'checkContentLength', 'readJsonRpcBody', 'requireLegacySessionOwner', 'readLegacyMessage']);

async function tracedStep(step: ExchangeStep, exchange: McpExchange): Promise<void> {
  const trace = exchange.trace;
  if (trace === undefined) return step(exchange);
  if (!trace.begun && (exchange.post !== undefined || !BEFORE_MESSAGE.has(step.name))) {
    exchange.spanStart = mcpSpanStart(exchange.request, exchange.state.route.path, exchange.post);
    trace.begin(exchange.spanStart);
  }
  const span = step.name === 'forwardToBackend' && exchange.spanStart !== undefined
    ? backendSpan(exchange.spanStart, exchange.state.route.backend)
    : { name: step.name, kind: 'internal' as const, attributes: { 'gatehouse.step': step.name } };
  await trace.step(span, () => step(exchange));
}

/** Steps after this one may rely on `exchange.call`. */
export function authorized(exchange: McpExchange): AuthorizedCall {
  if (exchange.call === undefined) throw new Error(`step order: ${exchange.request.url} has no authorized caller yet`);
  return exchange.call;
}

/** A stream a request opens takes a place in its user's budget on the route (429 past it). */
export function refuseOverStreamBudget(exchange: McpExchange): void {
  const { runtime, state, reply } = exchange;
  const budget = state.route.rateLimit.streamsPerUser;
  if (runtime.streamBudget.admit(state.route.path, authorized(exchange).claims.sub, budget, reply.raw)) return;
  exchange.draft.reason = 'stream budget';
  throw new ProtocolError('rate_limited', `You have ${budget} streams open on this gateway; close one before opening another.`, {
    headers: { 'retry-after': '30' },
  });
}

/** Origin allow-list, bearer token (signature, `aud` = this route, scope, expiry, grant not revoked), rate limit, stream budget. */
export async function authenticateCaller(exchange: McpExchange): Promise<void> {
  exchange.call = await authorizeRequest(exchange.runtime, exchange.state, exchange.request, exchange.draft, { rateLimit: true });
  // A GET opens a stream (Streamable HTTP's, legacy `/sse`): two sockets held for up to the idle timeout, which the
  // per-minute budget does not bound (one user held thousands).
  if (exchange.request.method === 'GET') refuseOverStreamBudget(exchange);
  // RFC 9449 §8.2/§9: a new DPoP nonce rides on any response, before the client's current one goes stale.
  if (exchange.call.claims.dpopNonce !== undefined) exchange.reply.header('dpop-nonce', exchange.call.claims.dpopNonce);
}

/**
 * Per-tool policy over every `tools/call` of the body (a batch cannot smuggle a denied call behind an allowed one):
 * scopes, groups, then the CEL argument policy, which sees the tool's approved (pinned) annotations only.
 */
export function enforcePerToolPolicy(exchange: McpExchange): void | Promise<void> {
  const { runtime, state, post } = exchange;
  if (post === undefined) return;
  const approvedToolOf = async (tool: string): Promise<ApprovedTool> =>
    state.route.toolPinning === 'off' ? { annotations: {} } : runtime.toolPins.approvedTool(state.route.path, tool);
  // A promise only when an argument policy has to read annotations (steps that finish at once are not awaited).
  return enforceToolPolicy(state, post, authorized(exchange), exchange.draft, approvedToolOf);
}

/** Pinned tool definitions: a `tools/call` of a tool whose definition is not the approved one (see enforce-tool-pinning.ts). */
export function enforcePinnedTools(exchange: McpExchange): void | Promise<void> {
  const { runtime, state, post, draft } = exchange;
  // Nothing to read from the store (no promise) unless the route pins its tools.
  if (post !== undefined && state.route.toolPinning !== 'off') return enforceToolPinning(runtime, state.route, post, draft);
}

/**
 * A `tools/list` result, in whatever answer it comes, has its definitions checked against the pins on the way back.
 * Any answer may carry one, whatever its request asked: a client hands each response to the pending request with its
 * id, on whichever POST's answer or stream it arrives. Screening only the answer to a POST that asked `tools/list` let
 * a backend put the list (denied tools, definitions changed since they were pinned) in its answer to a `ping`, and let
 * a client read it there through an honest backend: a `tools/call` sent with the id of a slow `tools/list` still in
 * flight, which an SDK server answers on the stream of the newest request with that id. A GET stream carries what the
 * server sends of itself and replays earlier streams on `Last-Event-ID` (MCP basic/transports §Resumability and
 * Redelivery). So answers are screened by their content, on every request.
 */
export function reviewToolDefinitions(exchange: McpExchange): void {
  exchange.reviewTools = toolListReviewer(exchange.runtime, exchange.state.route, exchange.draft);
}

/**
 * The backend request's headers: the client's minus credentials, hop-by-hop and address claims, plus the gateway's
 * identity (assertion or broker token, never the client's token) and the forwarding headers it saw itself.
 */
export async function forwardIdentity(exchange: McpExchange): Promise<void> {
  const headers = await backendHeaders(exchange.runtime, exchange.state, exchange.request, authorized(exchange));
  if (exchange.post !== undefined) {
    // The message the gateway read (UTF-8 JSON, no content coding: requireUtf8Json), labelled so the backend can read
    // it no other way: no parameter of the client's Content-Type travels on.
    headers['content-type'] = 'application/json';
    if (headers['content-encoding'] !== undefined) delete headers['content-encoding'];
  }
  exchange.backendHeaders = headers;
}

/**
 * A stream is admitted by its request's check and tracked once its backend answered (open-streams.ts): a grant ended,
 * its token expired, its signing key revoked, the revocation list gone stale or the route's required scopes raised by a
 * reload in between (a backend slow to send its headers) is answered as the check answers a new request — 401 to end the grant's use,
 * 403 `insufficient_scope` to ask for more, 503 to retry — rather than with a connection cut, which a client takes
 * for a network fault and reconnects after. The backend's stream never ends by itself: it is cut, not drained.
 */
export function refuseStreamNoLongerAdmitted(exchange: McpExchange, caller: StreamCaller): void {
  const { claims } = authorized(exchange);
  const reason = exchange.runtime.openStreams.refusal(caller);
  if (reason === undefined) return;
  backendResponse(exchange).body.destroy();
  exchange.draft.reason = reason;
  if (reason === 'revocations cannot be checked') throw revocationsUnknown();
  // As a request naming the session after its DELETE is answered.
  if (reason === 'session ended') throw sessionNotFound();
  const scheme = claims.jkt === undefined ? 'bearer' : 'dpop';
  if (reason === 'scopes no longer enough') {
    const missing = exchange.state.route.requiredScopes.filter((scope) => !claims.scopes.includes(scope));
    throw insufficientScope(exchange.state.target, `The access token lacks the scope(s): ${missing.join(' ')}.`, scheme);
  }
  throw unauthorized(exchange.state.target, true, REFUSED_TOKEN[reason], scheme);
}

/** What the bearer check says of a token refused for this reason (verify-access-token.ts). */
const REFUSED_TOKEN: Record<Exclude<StreamCutReason, 'revocations cannot be checked' | 'scopes no longer enough' | 'session ended'>, string> = {
  'grant ended': 'The access token has been revoked.',
  'signing key removed': 'The access token is malformed or its signature does not verify.',
  'token expired': 'The access token has expired.',
};

/**
 * A backend's 5xx answer reaches the client as the gateway's own error, never with the backend's body: that body is
 * what a failing server writes about itself (a stack trace, an internal path, a connection string), and a gateway in
 * front of it must not publish it. The status says what kind of failure it was — a 503 stays a 503 with its
 * `Retry-After`, a 504 a 504, anything else is a 502 — and the log has the backend's status, not its body (which may
 * hold a secret). 4xx answers pass: they are about the client's request (a session ended, a bad argument) — except
 * a 431, which is about the gateway's (refuseHeadersTooLarge).
 */
export function concealBackendFailure(exchange: McpExchange): void {
  const response = backendResponse(exchange);
  if (response.statusCode === 431) refuseHeadersTooLarge(exchange, response);
  if (response.statusCode < 500) return;
  discardBody(response.body);
  const path = exchange.state.route.path;
  const detail = `the backend answered ${response.statusCode}`;
  if (response.statusCode === 503) {
    const retryAfter = retryAfterSeconds(headerValue(response.headers['retry-after']), exchange.runtime.ctx.clock.now());
    const headers = retryAfter === undefined ? undefined : { 'retry-after': retryAfter };
    throw new ProtocolError('temporarily_unavailable', `The backend of ${path} is temporarily unavailable; retry later.`, { detail, headers });
  }
  if (response.statusCode === 504) throw new ProtocolError('gateway_timeout', `The backend of ${path} did not answer in time.`, { detail });
  throw new ProtocolError('bad_gateway', `The backend of ${path} failed.`, { detail });
}

/**
 * A backend's `Retry-After` as delta-seconds: given so, or as an HTTP-date (RFC 9110 §10.2.3 allows both), which is
 * turned into the seconds left (at least 1), so the client reads one form whatever the backend wrote.
 */
function retryAfterSeconds(value: string | undefined, now: number): string | undefined {
  const text = value?.trim();
  if (text === undefined || text === '') return undefined;
  if (/^\d{1,9}$/.test(text)) return text;
  // RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must take too (asctime is GMT).
  const at = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text) || /^[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/.test(text)
    ? Date.parse(text)
    : /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/.test(text)
      ? Date.parse(`${text} GMT`)
      : Number.NaN;
  return Number.isNaN(at) ? undefined : String(Math.min(999_999_999, Math.max(1, Math.ceil((at - now) / 1000))));
}

/**
 * A backend's 431: the headers it refused are the gateway's request — the identity assertion it added, with what it
 * forwarded — not the client's, which the gateway read itself. A 502 (an `error` in the audit), not the client's
 * mistake (a `denied`); the log names the status.
 */
function refuseHeadersTooLarge(exchange: McpExchange, response: BackendResponse): never {
  discardBody(response.body);
  throw new ProtocolError('bad_gateway', `The backend of ${exchange.state.route.path} refused the gateway's request headers as too large.`, {
    detail: 'backend status 431',
  });
}

/**
 * What no client may be handed as the backend's answer, on any MCP transport: a redirect (the client would follow it
 * wherever the backend points: a cloud metadata address, an internal host) and a 401 or 403 to the gateway's identity,
 * which reached the client without the gateway's challenge and read as its own token refused (refuseBackendRefusal).
 * Returns nothing for any other answer (no promise: only a refusal may need the store).
 */
export function refuseRedirectOrRefusal(exchange: McpExchange, response: BackendResponse): void | Promise<void> {
  const status = response.statusCode;
  if (status === 401 || status === 403) return refuseBackendRefusal(exchange, response);
  if (status >= 300 && status < 400) {
    discardBody(response.body);
    const what = status === 304 ? '304 Not Modified, which answers no MCP request' : 'a redirect';
    throw new ProtocolError('bad_gateway', `The backend of ${exchange.state.route.path} answered with ${what}.`, { detail: `backend status ${status}` });
  }
}

/**
 * A backend's 401 or 403 to the gateway's identity assertion: a 502 (the backend refused the gateway, not the client),
 * except a 401 `insufficient_claims` step-up the user can complete (backend-step-up.ts), which becomes the gateway's
 * own 401 challenge and ends the grant.
 */
export async function refuseBackendRefusal(exchange: McpExchange, response: BackendResponse): Promise<void> {
  discardBody(response.body);
  const { claims } = authorized(exchange);
  const stepUp =
    response.statusCode === 401
      ? await exchange.runtime.backendStepUp.answer({
          subject: claims.sub,
          grantId: claims.grantId,
          challenge: exchange.state.target,
          scheme: claims.jkt === undefined ? 'bearer' : 'dpop',
          wwwAuthenticate: response.headers['www-authenticate'],
        })
      : undefined;
  if (stepUp !== undefined) throw stepUp;
  throw new ProtocolError('bad_gateway', `The backend of ${exchange.state.route.path} refused the gateway's identity assertion.`);
}

/**
 * The backend request, cancelled when the client goes away. A streamed upload that the body cap or deadline stopped
 * makes undici report a failed request: the client is told why (413, 408), not that the backend failed.
 */
export function forwardToBackend(options: { url: (exchange: McpExchange) => string; accept?: string; getOpensStream?: boolean }): ExchangeStep {
  return async function forwardToBackend(exchange) {
    const { state, request, reply, post, upload } = exchange;
    if (exchange.backendHeaders === undefined) throw new Error(`step order: ${request.url} has no backend headers yet`);
    const headers = exchange.backendHeaders;
    if (options.accept !== undefined) headers.accept = options.accept;
    const url = options.url(exchange);
    // The backend continues the trace from the gateway's backend-call span (W3C Trace Context), not from the client.
    exchange.trace?.inject(headers);
    try {
      exchange.response = await state.backend.send({
        url,
        method: request.method as Dispatcher.HttpMethod,
        headers,
        body: upload ?? exchange.heldBody ?? post?.raw ?? null,
        signal: abortOnClientClose(reply),
        // On an MCP route a GET opens a stream (listen or legacy event stream): a backend connection of its own.
        ownConnection: options.getOpensStream === true && request.method === 'GET',
      });
      // Until the relay takes the body, nothing listens to it: a step that drops it (the store could not bind a
      // session) or a client leaving (the request is aborted) makes undici emit an 'error' that, unheard, ended the
      // process. What an error means for the answer is for the relay's own listeners (relay-response.ts) to say.
      exchange.response.body.on('error', ignoreUnrelayedBodyError);
    } catch (error) {
      if (upload?.errored instanceof ProtocolError) throw upload.errored;
      const overLimit = await exchange.uploadOverLimit?.();
      if (overLimit !== undefined) throw overLimit;
      upload?.destroy();
      throw error;
    }
  };
}

function ignoreUnrelayedBodyError(): void {}

export function backendResponse(exchange: McpExchange): BackendResponse {
  if (exchange.response === undefined) throw new Error(`step order: ${exchange.request.url} has no backend response yet`);
  return exchange.response;
}

export const headerValue = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);
