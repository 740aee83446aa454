import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { backendFailure } from './backend-client.ts';
import { ProtocolError } from '../server/errors.ts';
import { enforceToolPolicy } from './enforce-tool-policy.ts';
import { abortOnClientClose, authorizeRequest, backendHeaders, type GatewayRuntime } from './gateway-runtime.ts';
import { checkMirroredHeaders, type McpPost } from './mcp-message.ts';
import { readMcpPost } from './read-mcp-post.ts';
import { mediaType, relayResponse } from './relay-response.ts';
import { auditDraft, type AuditDraft } from './request-audit.ts';
import type { RouteState } from './route-state.ts';
import { trackOpenStream } from './stream-metrics.ts';
import { deniedTools } from './tool-policy.ts';
import { filterToolsListJson, toolsListSseFilter } from './tools-list-filter.ts';

/**
 * The Streamable HTTP transport, every revision: 2026-07-28 (stateless POSTs with mirrored `Mcp-Method`/`Mcp-Name`
 * headers) and 2025-03-26 … 2025-11-25 (POST, GET stream, DELETE, `Mcp-Session-Id`, `Last-Event-ID`). The gateway
 * forwards headers it does not own, so revision-specific headers pass through unchanged.
 *
 * @see MCP 2026-07-28 basic/transports; MCP 2025-11-25 basic/transports §Session Management, §Resumability.
 */
const SESSION_TTL_SECONDS = 24 * 3600;
const MCP_RESPONSE_TYPES = new Set(['application/json', 'text/event-stream']);

export function streamableHttpHandler(runtime: GatewayRuntime, state: RouteState) {
  return async function handleStreamableHttp(request: FastifyRequest, reply: FastifyReply) {
    const draft = auditDraft(request);
    const call = await authorizeRequest(runtime, state, request, draft, { rateLimit: true });
    let post: McpPost | undefined;
    if (request.method === 'POST') {
      post = await readStreamablePost(runtime, state, request, draft);
    }
    const sessionId = headerValue(request.headers['mcp-session-id']);
    if (sessionId !== undefined) await runtime.sessions.require('mcp-session', sessionId, call.claims.sub, state.route.path);
    if (post) enforceToolPolicy(state, post, call, draft);
    const denied = post?.method === 'tools/list' ? deniedTools(state.route, call.caller) : new Set<string>();

    const headers = await backendHeaders(runtime, state, request, call);
    const response = await state.backend.send({
      url: state.route.backend,
      method: request.method as 'GET' | 'POST' | 'DELETE',
      headers,
      body: post?.raw ?? null,
      signal: abortOnClientClose(reply),
    });

    const issuedSession = headerValue(response.headers['mcp-session-id']);
    if (issuedSession !== undefined && sessionId === undefined) {
      await runtime.sessions.bind(
        'mcp-session',
        issuedSession,
        { subject: call.claims.sub, route: state.route.path, createdAt: runtime.ctx.clock.now() },
        SESSION_TTL_SECONDS,
      );
    }
    if (request.method === 'DELETE' && sessionId !== undefined && response.statusCode < 300) {
      await runtime.sessions.forget('mcp-session', sessionId);
    }
    if (response.statusCode === 401 || response.statusCode === 403) {
      response.body.resume();
      throw new ProtocolError('bad_gateway', `The backend of ${state.route.path} refused the gateway's identity assertion.`);
    }
    if (post && response.statusCode === 200 && !MCP_RESPONSE_TYPES.has(mediaType(response.headers))) {
      response.body.resume();
      throw new ProtocolError('bad_gateway', `The backend of ${state.route.path} answered with something that is not MCP.`);
    }
    const body = await toolsListBody(state, response, denied);
    if (response.statusCode === 200 && mediaType(response.headers) === 'text/event-stream') {
      trackOpenStream(reply, runtime.metrics, { route: state.route.path, transport: 'streamable-http' });
    }
    return relayResponse(reply, response, draft, state.route, body);
  };
}

async function readStreamablePost(runtime: GatewayRuntime, state: RouteState, request: FastifyRequest, draft: AuditDraft): Promise<McpPost> {
  const post = await readMcpPost(runtime, state, request, draft);
  checkMirroredHeaders(post, {
    method: headerValue(request.headers['mcp-method']),
    name: headerValue(request.headers['mcp-name']),
  });
  return post;
}

/** Filters a `tools/list` answer when the caller is denied some tools; otherwise the body streams untouched. */
async function toolsListBody(
  state: RouteState,
  response: Awaited<ReturnType<RouteState['backend']['send']>>,
  denied: ReadonlySet<string>,
): Promise<Readable> {
  if (denied.size === 0 || response.statusCode !== 200) return response.body;
  const type = mediaType(response.headers);
  if (type === 'text/event-stream') return response.body.pipe(toolsListSseFilter(denied));
  if (type !== 'application/json') return response.body;
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) chunks.push(chunk as Buffer);
    return Readable.from([filterToolsListJson(Buffer.concat(chunks), denied)]);
  } catch (error) {
    throw backendFailure(state.route, error);
  }
}

const headerValue = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);
