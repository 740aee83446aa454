import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RequestTrace, ServerSpanStart, SpanAttributes, StepSpan, TraceCarrier, Tracing } from '../observability/tracing.ts';
import type { McpPost } from './mcp-message.ts';
import { auditDraft } from './request-audit.ts';
import { gatewayState } from './request-state.ts';
import { boundedValue } from './client-value.ts';

/**
 * What a gateway request looks like as a trace, named and attributed per the OpenTelemetry semantic conventions for
 * MCP: a SERVER span `{mcp.method.name} {target}` (`tools/call echo`) with `mcp.method.name`, `gen_ai.tool.name`,
 * `jsonrpc.request.id`, `mcp.session.id`, `mcp.protocol.version`; beneath it one span per gateway step (token check,
 * tool trust, policy, identity and broker exchange), and the backend call as a CLIENT span of the same name whose
 * context the backend receives in `traceparent`. No tool arguments, results or tokens are ever attributes.
 *
 * @see OpenTelemetry semantic conventions, docs/gen-ai/mcp.md (Development status)
 */
// A span keeps at most MAX_RECORDED_VALUE_LENGTH characters of a client's value (client-value.ts): the exporter
// queues up to 2048 spans while a collector is slow, so one caller's huge tool name in every span would hold
// gigabytes, and a collector refusing the oversized batch would drop everyone's spans.

/** Starts a request's trace (before its audit record, so the record can carry the trace id when the response closes). */
export function startRequestTrace(tracing: Tracing, request: FastifyRequest, reply: FastifyReply, route: string): void {
  const fallback: ServerSpanStart = { name: `${request.method} ${route}`, attributes: transportAttributes(request, route) };
  const requestTrace = tracing.startRequest(request.headers, performance.timeOrigin + performance.now(), fallback);
  gatewayState(request).trace = requestTrace;
  reply.raw.on('close', () => {
    const status = reply.raw.statusCode;
    const draft = auditDraft(request);
    const errorType = !reply.raw.writableFinished ? 'client_closed' : status >= 400 ? String(status) : draft.outcome === 'denied' ? 'denied' : undefined;
    requestTrace.end({ status, ...(errorType === undefined ? {} : { errorType }) });
    draft.traceId = requestTrace.traceId;
  });
}

export const requestTrace = (request: FastifyRequest): RequestTrace | undefined => request.gatewayState?.trace;

function transportAttributes(request: FastifyRequest, route: string): SpanAttributes {
  const attributes: SpanAttributes = { 'http.request.method': request.method, 'http.route': route, 'network.protocol.name': 'http', 'network.transport': 'tcp' };
  const version = request.headers['mcp-protocol-version'];
  if (typeof version === 'string') attributes['mcp.protocol.version'] = boundedValue(version);
  const session = request.headers['mcp-session-id'];
  if (typeof session === 'string') attributes['mcp.session.id'] = boundedValue(session);
  return attributes;
}

/** `{mcp.method.name} {target}` and the MCP attributes of the body's request (the first, in a batch). */
export function mcpSpanStart(request: FastifyRequest, route: string, post: McpPost | undefined): ServerSpanStart {
  const attributes = transportAttributes(request, route);
  const first = post?.messages[0];
  if (first === undefined || !('method' in first)) return { name: `${request.method} ${route}`, attributes };
  const method = boundedValue(first.method);
  attributes['mcp.method.name'] = method;
  if (first.id !== undefined) attributes['jsonrpc.request.id'] = boundedValue(String(first.id));
  const tool = first.method === 'tools/call' && typeof first.params?.name === 'string' ? boundedValue(first.params.name) : undefined;
  if (tool !== undefined) {
    attributes['gen_ai.tool.name'] = tool;
    attributes['gen_ai.operation.name'] = 'execute_tool';
  }
  const prompt = first.method === 'prompts/get' && typeof first.params?.name === 'string' ? boundedValue(first.params.name) : undefined;
  if (prompt !== undefined) attributes['gen_ai.prompt.name'] = prompt;
  const target = tool ?? prompt;
  return { name: target === undefined ? method : `${method} ${target}`, attributes, ...messageContext(first.params) };
}

/** `params._meta.traceparent` / `tracestate`, as the MCP conventions propagate them inside the message. */
function messageContext(params: Record<string, unknown> | undefined): { messageContext?: TraceCarrier } {
  const meta = params?._meta;
  if (typeof meta !== 'object' || meta === null) return {};
  const { traceparent, tracestate } = meta as Record<string, unknown>;
  if (typeof traceparent !== 'string') return {};
  return { messageContext: { traceparent, ...(typeof tracestate === 'string' ? { tracestate } : {}) } };
}

/** The backend call: a CLIENT span named like the server span, with the backend's address. */
export function backendSpan(start: ServerSpanStart, backend: string): StepSpan {
  const url = new URL(backend);
  const attributes: SpanAttributes = { 'server.address': url.hostname, 'server.port': Number(url.port) || (url.protocol === 'https:' ? 443 : 80) };
  for (const key of ['mcp.method.name', 'gen_ai.tool.name', 'gen_ai.operation.name', 'jsonrpc.request.id', 'mcp.session.id', 'mcp.protocol.version']) {
    const value = start.attributes[key];
    if (value !== undefined) attributes[key] = value;
  }
  return { name: start.name, kind: 'client', attributes };
}
