import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { readRequestBody } from '../server/request-body.ts';
import { rememberJsonRpcId } from './gateway-error.ts';
import type { GatewayRuntime } from './gateway-runtime.ts';
import { parseMcpPost, type McpPost } from './mcp-message.ts';
import type { AuditDraft } from './request-audit.ts';
import { routeBodyLimit, type RouteState } from './route-state.ts';

/**
 * Reads and parses a JSON-RPC POST body for either transport (Streamable HTTP, legacy SSE messages): capped at the
 * body limit and the route's body timeout (slow loris), its id remembered so a later error answers the same request,
 * and its size, method and tool name recorded for the audit (even if a later check refuses the request).
 */
export async function readMcpPost(runtime: GatewayRuntime, state: RouteState, request: FastifyRequest, draft: AuditDraft): Promise<McpPost> {
  // No body at all (`Content-Length: 0`) leaves `request.body` undefined: read as empty, a JSON-RPC parse error.
  const raw = await readRequestBody(request.body as Readable | undefined, {
    limit: routeBodyLimit(state, runtime.ctx.config.server.bodyLimitBytes),
    timeoutMs: state.route.timeouts.requestBodyMs,
    declaredLength: request.headers['content-length'],
  });
  draft.bytesIn = raw.length;
  const post = parseMcpPost(raw);
  rememberJsonRpcId(request, post.requestId);
  draft.method = post.method;
  if (post.method === 'tools/call') draft.tool = post.name;
  return post;
}
