import type { FastifyRequest } from 'fastify';
import { ProtocolError, type ErrorCode, type ProtocolErrorOptions } from '../server/errors.ts';

/**
 * A ProtocolError raised on an MCP route that also names the JSON-RPC error code the client should see, for the
 * cases where MCP assigns one (e.g. -32020 HeaderMismatch for `Mcp-Method`/`Mcp-Name` disagreeing with the body).
 */
export class McpGatewayError extends ProtocolError {
  readonly jsonRpcCode: number;
  constructor(code: ErrorCode, jsonRpcCode: number, description: string, options?: ProtocolErrorOptions) {
    super(code, description, options);
    this.jsonRpcCode = jsonRpcCode;
  }
}

/** JSON-RPC 2.0 §5.1 codes, plus MCP's. */
export const JSONRPC = {
  parseError: -32700,
  invalidRequest: -32600,
  internalError: -32603,
  /** MCP 2026-07-28: a mirrored header disagrees with the body (HTTP 400). */
  headerMismatch: -32020,
  /** Implementation-defined server error range (JSON-RPC §5.1): used for gateway refusals. */
  gatewayError: -32000,
} as const;

export function jsonRpcCodeFor(error: ProtocolError): number {
  if (error instanceof McpGatewayError) return error.jsonRpcCode;
  if (error.code === 'invalid_request' || error.code === 'payload_too_large') return JSONRPC.invalidRequest;
  if (error.status >= 500) return JSONRPC.internalError;
  return JSONRPC.gatewayError;
}

const jsonRpcIds = new WeakMap<FastifyRequest, string | number>();

/** Remembers the id of the JSON-RPC request being handled, so an error can answer it (JSON-RPC 2.0 §5). */
export function rememberJsonRpcId(request: FastifyRequest, id: string | number | undefined): void {
  if (id !== undefined) jsonRpcIds.set(request, id);
}

export const requestJsonRpcId = (request: FastifyRequest): string | number | undefined => jsonRpcIds.get(request);
