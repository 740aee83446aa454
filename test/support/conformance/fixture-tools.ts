import { z } from 'zod';
import type { CallToolResult, McpServer, ServerContext } from '@modelcontextprotocol/server';

/**
 * The tools the conformance suite's `server` scenarios call on a 2025-11-25 connection (initialize handshake,
 * sessions, server→client requests pushed on the POST stream). Names, arguments and texts are the ones the scenarios
 * check; their descriptions in `@modelcontextprotocol/conformance` are the specification of this fixture.
 */

/** 1×1 red PNG and a minimal WAV: the suite checks only the type and MIME type of the content. */
export const TEST_IMAGE_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
export const TEST_AUDIO_BASE64 = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';

const text = (value: string): CallToolResult => ({ content: [{ type: 'text', text: value }] });
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const noArguments = z.object({});

/** Asks the client something on the request's own stream; a client without the capability gets the error as text. */
async function askClient(ctx: ServerContext, request: { method: 'sampling/createMessage' | 'elicitation/create'; params: Record<string, unknown> }, render: (result: Record<string, unknown>) => string): Promise<CallToolResult> {
  try {
    return text(render((await ctx.mcpReq.send(request)) as Record<string, unknown>));
  } catch (error) {
    return text(`The client could not answer ${request.method}: ${(error as Error).message}`);
  }
}

const elicitationReport = (prefix: string) => (result: Record<string, unknown>) =>
  `${prefix}: action=${String(result.action)}, content=${JSON.stringify(result.content ?? {})}`;

const SEP1034_FORM = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'User name', default: 'John Doe' },
    age: { type: 'integer', description: 'User age', default: 30 },
    score: { type: 'number', description: 'User score', default: 95.5 },
    status: { type: 'string', description: 'User status', enum: ['active', 'inactive', 'pending'], default: 'active' },
    verified: { type: 'boolean', description: 'Verification status', default: true },
  },
  required: [],
};

const SEP1330_FORM = {
  type: 'object',
  properties: {
    untitledSingle: { type: 'string', description: 'Pick one', enum: ['option1', 'option2', 'option3'] },
    titledSingle: {
      type: 'string',
      description: 'Pick one (titled)',
      oneOf: [
        { const: 'value1', title: 'First Option' },
        { const: 'value2', title: 'Second Option' },
        { const: 'value3', title: 'Third Option' },
      ],
    },
    legacyEnum: { type: 'string', description: 'Pick one (legacy names)', enum: ['opt1', 'opt2', 'opt3'], enumNames: ['Option One', 'Option Two', 'Option Three'] },
    untitledMulti: { type: 'array', description: 'Pick several', minItems: 1, maxItems: 3, items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
    titledMulti: {
      type: 'array',
      description: 'Pick several (titled)',
      minItems: 1,
      maxItems: 3,
      items: {
        anyOf: [
          { const: 'value1', title: 'First Choice' },
          { const: 'value2', title: 'Second Choice' },
          { const: 'value3', title: 'Third Choice' },
        ],
      },
    },
  },
  required: [],
};

export function registerContentTools(server: McpServer): void {
  server.registerTool('test_simple_text', { description: 'Returns one text block' }, async () => text('This is a simple text response for testing.'));
  server.registerTool('test_image_content', { description: 'Returns one image block' }, async () => ({
    content: [{ type: 'image', data: TEST_IMAGE_BASE64, mimeType: 'image/png' }],
  }));
  server.registerTool('test_audio_content', { description: 'Returns one audio block' }, async () => ({
    content: [{ type: 'audio', data: TEST_AUDIO_BASE64, mimeType: 'audio/wav' }],
  }));
  server.registerTool('test_embedded_resource', { description: 'Returns an embedded resource' }, async () => ({
    content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }],
  }));
  server.registerTool('test_multiple_content_types', { description: 'Returns text, image and resource blocks' }, async () => ({
    content: [
      { type: 'text', text: 'Multiple content types test:' },
      { type: 'image', data: TEST_IMAGE_BASE64, mimeType: 'image/png' },
      { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: JSON.stringify({ test: 'data', value: 123 }) } },
    ],
  }));
  server.registerTool('test_error_handling', { description: 'Always fails' }, async () => {
    throw new Error('This tool intentionally returns an error for testing');
  });
}

export function registerStreamingTools(server: McpServer): void {
  server.registerTool('test_tool_with_logging', { description: 'Logs three messages while it runs', inputSchema: noArguments }, async (_args, ctx) => {
    for (const [index, message] of ['Tool execution started', 'Tool processing data', 'Tool execution completed'].entries()) {
      if (index > 0) await pause(50);
      await ctx.mcpReq.notify({ method: 'notifications/message', params: { level: 'info', data: message } });
    }
    return text('Tool with logging executed successfully');
  });
  server.registerTool('test_tool_with_progress', { description: 'Reports progress 0, 50, 100', inputSchema: noArguments }, async (_args, ctx) => {
    const progressToken = ctx.mcpReq._meta?.progressToken ?? 0;
    for (const progress of [0, 50, 100]) {
      if (progress > 0) await pause(50);
      await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress, total: 100, message: `Completed step ${progress} of 100` } });
    }
    return text(String(progressToken));
  });
  server.registerTool('test_reconnection', { description: 'Closes its SSE stream mid-call (SEP-1699)', inputSchema: noArguments }, async (_args, ctx) => {
    ctx.http?.closeSSE?.();
    await pause(100);
    return text('Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.');
  });
  server.registerTool('test_sampling', { description: 'Asks the client for a completion', inputSchema: z.object({ prompt: z.string() }) }, async ({ prompt }, ctx) =>
    askClient(
      ctx,
      { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 100 } },
      (result) => `LLM response: ${(result.content as { text?: string } | undefined)?.text ?? 'No response'}`,
    ),
  );
  server.registerTool('test_elicitation', { description: 'Asks the user for input', inputSchema: z.object({ message: z.string() }) }, async ({ message }, ctx) =>
    askClient(
      ctx,
      {
        method: 'elicitation/create',
        params: { message, requestedSchema: { type: 'object', properties: { response: { type: 'string', description: "User's response" } }, required: ['response'] } },
      },
      elicitationReport('User response'),
    ),
  );
  server.registerTool('test_elicitation_sep1034_defaults', { description: 'Elicitation with defaults (SEP-1034)', inputSchema: noArguments }, async (_args, ctx) =>
    askClient(ctx, { method: 'elicitation/create', params: { message: 'Please review and update the form fields with defaults', requestedSchema: SEP1034_FORM } }, elicitationReport('Elicitation completed')),
  );
  server.registerTool('test_elicitation_sep1330_enums', { description: 'Elicitation with enum forms (SEP-1330)', inputSchema: noArguments }, async (_args, ctx) =>
    askClient(ctx, { method: 'elicitation/create', params: { message: 'Please select options from the enum fields', requestedSchema: SEP1330_FORM } }, elicitationReport('Elicitation completed')),
  );
}
