import { McpServer, type CallToolResult, type ServerContext } from '@modelcontextprotocol/server';
import type { CallerIdentity } from './caller-identity.ts';
import {
  capabilitySchemas,
  CapabilityError,
  graphUserDetails,
  hello,
  SERVICE_NAME,
  SERVICE_VERSION,
  status,
  userContext,
  type CapabilityDeps,
} from './capabilities.ts';

/**
 * The MCP face of the capabilities. The caller comes from the request's authInfo (set by the server after it
 * verified the assertion), never from tool arguments: a model cannot talk its way into another user's identity.
 */
export const CALLER_KEY = 'gatehouseCaller';

function callerOf(ctx: ServerContext): CallerIdentity {
  const caller = ctx.http?.authInfo?.extra?.[CALLER_KEY] as CallerIdentity | undefined;
  // The HTTP layer refuses unauthenticated requests before they reach the SDK; this guards a wiring mistake.
  if (!caller) throw new Error('request reached a tool without a verified caller');
  return caller;
}

function result<T extends Record<string, unknown>>(structured: T): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(structured) }], structuredContent: structured };
}

function toolError(error: unknown): CallToolResult {
  const message = error instanceof CapabilityError ? error.message : 'The tool failed unexpectedly.';
  return { content: [{ type: 'text', text: message }], isError: true };
}

export function createToolServer(deps: CapabilityDeps): McpServer {
  const server = new McpServer({ name: SERVICE_NAME, version: SERVICE_VERSION });
  const s = capabilitySchemas;

  server.registerTool(
    'get_graph_user_details',
    { description: s.get_graph_user_details.description, inputSchema: s.get_graph_user_details.input, outputSchema: s.get_graph_user_details.output, annotations: { readOnlyHint: true } },
    async (_args, ctx) => {
      try {
        return result(await graphUserDetails(deps, callerOf(ctx)));
      } catch (error) {
        return toolError(error);
      }
    },
  );
  server.registerTool(
    'hello',
    { description: s.hello.description, inputSchema: s.hello.input, outputSchema: s.hello.output, annotations: { readOnlyHint: true } },
    async ({ name }, ctx) => result(hello(callerOf(ctx), name)),
  );
  server.registerTool(
    'echo',
    { description: s.echo.description, inputSchema: s.echo.input, outputSchema: s.echo.output, annotations: { readOnlyHint: true } },
    async ({ message }) => result({ message }),
  );
  server.registerTool(
    'status',
    { description: s.status.description, inputSchema: s.status.input, outputSchema: s.status.output, annotations: { readOnlyHint: true } },
    async (_args, ctx) => result(status(deps, callerOf(ctx))),
  );
  server.registerTool(
    'me',
    { description: s.me.description, inputSchema: s.me.input, outputSchema: s.me.output, annotations: { readOnlyHint: true } },
    async (_args, ctx) => result(userContext(callerOf(ctx))),
  );
  return server;
}
