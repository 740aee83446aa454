import type { FastifyRequest } from 'fastify';
import { gatewayState } from './request-state.ts';
import { jsonRpcCodes, ProtocolError, type ErrorCode, type ProtocolErrorOptions } from '../errors/protocol-error.ts';

/**
 * A ProtocolError raised on an MCP route that names a more precise JSON-RPC code than the catalogue's, for the cases
 * where JSON-RPC or MCP assigns one (e.g. -32020 HeaderMismatch for `Mcp-Method`/`Mcp-Name` disagreeing with the
 * body). The codes themselves live in the one catalogue (src/errors/protocol-error.ts).
 */
export class McpGatewayError extends ProtocolError {
  constructor(code: ErrorCode, jsonRpcCode: number, description: string, options?: ProtocolErrorOptions) {
    super(code, description, { ...options, jsonRpcCode });
  }
}

export { jsonRpcCodes as JSONRPC };

/**
 * Remembers the id of the JSON-RPC request being handled, or the request ids of the batch, so an error can answer
 * them (JSON-RPC 2.0 §5, §6).
 */
export function rememberJsonRpcId(request: FastifyRequest, id: string | number | undefined, batchIds?: Array<string | number>): void {
  if (id !== undefined) gatewayState(request).jsonRpcId = id;
  if (batchIds !== undefined && batchIds.length > 0) gatewayState(request).jsonRpcBatchIds = batchIds;
}

export const requestJsonRpcId = (request: FastifyRequest): string | number | undefined => request.gatewayState?.jsonRpcId;

export const requestJsonRpcBatchIds = (request: FastifyRequest): Array<string | number> | undefined => request.gatewayState?.jsonRpcBatchIds;
