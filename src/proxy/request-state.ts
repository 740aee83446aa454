import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RequestTrace } from '../observability/tracing.ts';
import type { AuditDraft } from './request-audit.ts';

/**
 * What the gateway remembers about one request between its hooks, handler and error handler: the audit draft, the
 * JSON-RPC id an error must answer, the trace. Kept on the request itself, declared once per server (Fastify's request
 * decorators keep the request's shape stable), rather than in WeakMaps keyed by the request: each WeakMap entry was a
 * hash-table insert per request, and every young-generation collection has to walk those tables.
 */
export interface GatewayRequestState {
  audit?: AuditDraft;
  /** The id of the JSON-RPC request being handled, so an error can answer it (JSON-RPC 2.0 §5). */
  jsonRpcId?: string | number;
  /** The request ids of a JSON-RPC batch being handled, so an error can answer each of them (JSON-RPC 2.0 §6). */
  jsonRpcBatchIds?: Array<string | number>;
  trace?: RequestTrace;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set on gateway routes only (see gatewayState). */
    gatewayState: GatewayRequestState | null;
  }
}

/** Declares the field on this instance's requests; the gateway plugin calls it before its hooks and routes. */
export function decorateGatewayRequests(app: FastifyInstance): void {
  if (!app.hasRequestDecorator('gatewayState')) app.decorateRequest('gatewayState', null);
}

/** The request's state, created on first use. */
export function gatewayState(request: FastifyRequest): GatewayRequestState {
  return (request.gatewayState ??= {});
}
