import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { ProtocolError } from '../errors/protocol-error.ts';
import { declaresOnlyUtf8, mediaTypeOf } from '../protocol/media-type.ts';
import { readRequestBody } from '../server/request-body.ts';
import { namesContentCoding } from './forward-headers.ts';
import { rememberJsonRpcId } from './gateway-error.ts';
import type { GatewayRuntime } from './gateway-runtime.ts';
import { calledTool, parseMcpPost, type McpPost } from './mcp-message.ts';
import { auditBatchTools, type AuditDraft } from './request-audit.ts';
import { routeBodyLimit, type RouteState } from './route-state.ts';

/**
 * Reads and parses a JSON-RPC POST body for either transport (Streamable HTTP, legacy SSE messages): capped at the
 * body limit and the route's body timeout (slow loris), its id remembered so a later error answers the same request,
 * and its size, method and tool name recorded for the audit (even if a later check refuses the request).
 */
export async function readMcpPost(runtime: GatewayRuntime, state: RouteState, request: FastifyRequest, draft: AuditDraft): Promise<McpPost> {
  requireUtf8Json(request.headers);
  // No body at all (`Content-Length: 0`) leaves `request.body` undefined: read as empty, a JSON-RPC parse error.
  const raw = await readRequestBody(request.body as Readable | undefined, {
    limit: routeBodyLimit(state, runtime.ctx.config.server.bodyLimitBytes),
    timeoutMs: state.route.timeouts.requestBodyMs,
    declaredLength: request.headers['content-length'],
  });
  draft.bytesIn = raw.length;
  const post = parseMcpPost(raw);
  rememberJsonRpcId(request, post.requestId, post.batchRequestIds);
  // A batch has no one method: said so, or its record named a tool (its first call's) under no method at all.
  draft.method = post.method ?? (post.batchRequestIds !== undefined ? 'batch' : undefined);
  if (post.method === 'tools/call') draft.tool = post.name;
  else if (post.batchRequestIds !== undefined) auditBatchTools(draft, post.messages.flatMap((message) => calledTool(message) ?? []));
  return post;
}

/**
 * The gateway decides on the message as it reads it — UTF-8 JSON — and the backend must read the same bytes the same
 * way. A `charset` other than UTF-8 let it read another message: an MCP SDK backend decodes by the charset, and under
 * `charset=utf-7` a key the gateway read as `+AG4AYQBtAGU-` was a second `name` to the backend, so a tool the policy
 * denies was called. A content coding would do the same. JSON is UTF-8 (RFC 8259 §8.1) and MCP POSTs are
 * `application/json` (MCP basic/transports), so anything else is 415, as the MCP SDK servers answer a wrong type; the
 * message goes on labelled `application/json` alone (`forwardIdentity`, exchange.ts).
 */
export function requireUtf8Json(headers: IncomingHttpHeaders): void {
  const type = headers['content-type'];
  // What every MCP client sends: no parsing on the hot path.
  if (type !== 'application/json' && !isUtf8Json(type)) {
    throw new ProtocolError('invalid_request', 'An MCP message must be sent as `Content-Type: application/json` (UTF-8).', {
      status: 415,
      detail: `content-type ${JSON.stringify(type ?? null).slice(0, 120)}`,
    });
  }
  const coding = headers['content-encoding'];
  if (namesContentCoding(coding)) {
    // RFC 9110 §12.5.3: a 415 for a content coding says which codings are accepted.
    throw new ProtocolError('invalid_request', 'An MCP message must be sent without a content coding.', {
      status: 415,
      headers: { 'accept-encoding': 'identity' },
      detail: `content-encoding ${JSON.stringify(coding ?? null).slice(0, 120)}`,
    });
  }
}

/** `application/json` with parameters, of which any `charset` names UTF-8. */
function isUtf8Json(type: string | undefined): boolean {
  return type !== undefined && mediaTypeOf(type) === 'application/json' && declaresOnlyUtf8(type);
}
