import { Transform, type Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ProtocolError } from '../server/errors.ts';
import { enforceToolPolicy } from './enforce-tool-policy.ts';
import { abortOnClientClose, authorizeRequest, backendHeaders, type GatewayRuntime } from './gateway-runtime.ts';
import { readMcpPost } from './read-mcp-post.ts';
import { mediaType, relayResponse } from './relay-response.ts';
import { auditDraft } from './request-audit.ts';
import type { RouteState } from './route-state.ts';
import { deniedTools } from './tool-policy.ts';
import { trackOpenStream } from './stream-metrics.ts';
import { toolsListSseFilter } from './tools-list-filter.ts';

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

export function legacySseStreamHandler(runtime: GatewayRuntime, state: RouteState) {
  return async function handleLegacySseStream(request: FastifyRequest, reply: FastifyReply) {
    const draft = auditDraft(request);
    draft.method = 'sse/connect';
    const call = await authorizeRequest(runtime, state, request, draft, { rateLimit: true });
    const headers = await backendHeaders(runtime, state, request, call);
    headers.accept = 'text/event-stream';
    const response = await state.backend.send({ url: state.legacySseUrl, method: 'GET', headers, signal: abortOnClientClose(reply) });
    if (response.statusCode !== 200 || mediaType(response.headers) !== 'text/event-stream') {
      response.body.resume();
      throw new ProtocolError('bad_gateway', `The backend of ${state.route.path} did not open an SSE stream.`);
    }
    trackOpenStream(reply, runtime.metrics, { route: state.route.path, transport: 'sse' });

    const sessionId = runtime.ctx.random.token(24);
    const publicMessagesUrl = `${runtime.ctx.publicUrl}${state.route.path}${LEGACY_MESSAGES_SUFFIX}?sessionId=${sessionId}`;
    const bind = (backendMessageUrl: string) =>
      runtime.sessions.bind(
        'legacy-sse-session',
        sessionId,
        { subject: call.claims.sub, route: state.route.path, createdAt: runtime.ctx.clock.now(), backendMessageUrl },
        SESSION_TTL_SECONDS,
      );
    reply.raw.once('close', () => {
      runtime.sessions.forget('legacy-sse-session', sessionId).catch(() => {});
    });

    const denied = deniedTools(state.route, call.caller);
    // Every message's response travels on this stream, so each stage costs once per message: without a filter
    // the rewriter is the last stage and counts the bytes itself.
    const countBytes = denied.size === 0 ? (bytes: number) => void (draft.bytesOut += bytes) : undefined;
    const rewriter = response.body.pipe(endpointRewriter(state.legacySseUrl, publicMessagesUrl, bind, countBytes));
    if (countBytes) return relayResponse(reply, response, draft, state.route, rewriter, { bytesCounted: true });
    // Responses to tools/list arrive on this stream, not on the POST, so the filter watches the stream itself.
    const body: Readable = rewriter.pipe(toolsListSseFilter(denied));
    rewriter.once('error', (error) => body.destroy(error));
    return relayResponse(reply, response, draft, state.route, body);
  };
}

export function legacySseMessageHandler(runtime: GatewayRuntime, state: RouteState) {
  return async function handleLegacySseMessage(request: FastifyRequest<{ Querystring: { sessionId?: string } }>, reply: FastifyReply) {
    const draft = auditDraft(request);
    const call = await authorizeRequest(runtime, state, request, draft, { rateLimit: true });
    const sessionId = request.query.sessionId;
    if (typeof sessionId !== 'string' || sessionId === '') throw new ProtocolError('not_found', 'Session not found.');
    const binding = await runtime.sessions.require('legacy-sse-session', sessionId, call.claims.sub, state.route.path);

    const post = await readMcpPost(runtime, state, request, draft);
    enforceToolPolicy(state, post, call, draft);

    // Checked again on use: the binding comes from the shared store, which another replica or version may have written.
    const url = confinedMessageUrl(state.legacySseUrl, binding.backendMessageUrl ?? state.legacySseUrl);
    if (!url) throw new ProtocolError('bad_gateway', 'The backend named a message endpoint outside its own base path.');
    const headers = await backendHeaders(runtime, state, request, call);
    const response = await state.backend.send({
      url,
      method: 'POST',
      headers,
      body: post.raw,
      signal: abortOnClientClose(reply),
    });
    return relayResponse(reply, response, draft, state.route);
  };
}

/**
 * The URL the gateway may POST a session's messages to, from the backend's `endpoint` event (relative to the SSE
 * URL); undefined when it is not the backend's own: another origin (SSRF — e.g. a cloud metadata address), embedded
 * credentials, or a path outside the directory of the SSE endpoint (another application on the same origin, such as
 * a neighbouring MCP server or an admin API, reached with this route's identity). WHATWG URL parsing has already
 * resolved dot segments, encoded ones included, and turned `\` into `/` when the path is compared.
 */
export function confinedMessageUrl(backendSseUrl: string, announced: string): string | undefined {
  const sse = new URL(backendSseUrl);
  let target: URL;
  try {
    target = new URL(announced, sse);
  } catch {
    return undefined;
  }
  const directory = sse.pathname.slice(0, sse.pathname.lastIndexOf('/') + 1);
  if (target.origin !== sse.origin || target.username || target.password || !target.pathname.startsWith(directory)) return undefined;
  // Separators URL parsing leaves encoded, which a backend may decode into `/` (or cut at): ambiguous, so refused.
  if (/%(2f|5c|00)/i.test(target.pathname)) return undefined;
  target.hash = '';
  return target.href;
}

/**
 * Rewrites the `endpoint` event (the first event; comments before it pass through) and passes everything after it
 * untouched. The binding is written before the rewritten event is released, so a client cannot POST to a session
 * the store does not know yet.
 */
function endpointRewriter(
  backendSseUrl: string,
  publicMessagesUrl: string,
  bind: (backendMessageUrl: string) => Promise<void>,
  countBytes: (bytes: number) => void = () => {},
): Transform {
  let pending = '';
  let rewritten = false;
  const field = (lines: string[], name: string) =>
    lines.find((line) => line.startsWith(`${name}:`))?.slice(name.length + 1).trim();
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (rewritten) {
        countBytes(chunk.length);
        return callback(null, chunk);
      }
      pending += chunk.toString('utf8');
      let passed = '';
      for (;;) {
        const end = /\r?\n\r?\n/.exec(pending);
        if (!end) {
          countBytes(Buffer.byteLength(passed));
          return callback(null, passed || undefined);
        }
        const event = pending.slice(0, end.index);
        pending = pending.slice(end.index + end[0].length);
        const lines = event.split(/\r?\n/);
        if (lines.every((line) => line.startsWith(':'))) {
          passed += `${event}\n\n`;
          continue;
        }
        const data = field(lines, 'data');
        if (field(lines, 'event') !== 'endpoint' || !data) {
          return callback(new ProtocolError('bad_gateway', 'The backend SSE stream did not start with an endpoint event.'));
        }
        const target = confinedMessageUrl(backendSseUrl, data);
        if (!target) return callback(new ProtocolError('bad_gateway', 'The backend named a message endpoint outside its own base path.'));
        rewritten = true;
        const rest = pending;
        pending = '';
        const output = `${passed}event: endpoint\ndata: ${publicMessagesUrl}\n\n${rest}`;
        bind(target).then(
          () => {
            countBytes(Buffer.byteLength(output));
            callback(null, output);
          },
          (error: unknown) => callback(error as Error),
        );
        return;
      }
    },
  });
}
