import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import {
  createMcpHandler,
  createRequestStateCodec,
  hostHeaderValidationResponse,
  isLegacyRequest,
  localhostAllowedHostnames,
  McpServer,
  ResourceTemplate,
  WebStandardStreamableHTTPServerTransport,
  type EventStore,
  type RequestStateCodec,
} from '@modelcontextprotocol/server';
import { serveFetch } from '../mcp-backends.ts';
import { registerInputRequiredFixtures, type ListChangeTriggers } from './fixture-input-required.ts';
import { registerContentTools, registerStreamingTools, TEST_IMAGE_BASE64 } from './fixture-tools.ts';

/**
 * The conformance fixture backend: every tool, resource and prompt the `@modelcontextprotocol/conformance` `server`
 * scenarios call, built with the official v2 SDK and served as the SDK recommends for both eras on one endpoint:
 * 2026-07-28 requests (per-request `_meta` envelope) by `createMcpHandler`, 2025-era traffic (initialize, sessions,
 * GET streams, resumable SSE) by a sessionful `WebStandardStreamableHTTPServerTransport`, split with
 * `isLegacyRequest`. A DNS-rebinding guard (Host must be loopback) sits in front, as the suite requires of a
 * loopback server without authentication.
 */
export interface ConformanceBackend {
  url: string;
  close(): Promise<void>;
}

function buildServer(codec: RequestStateCodec<string>, triggers: ListChangeTriggers): McpServer {
  const server = new McpServer(
    { name: 'gatehouse-conformance-fixture', version: '1.0.0' },
    {
      capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true }, prompts: { listChanged: true }, logging: {}, completions: {} },
      requestState: { verify: codec.verify },
    },
  );
  registerContentTools(server);
  registerStreamingTools(server);
  registerInputRequiredFixtures(server, codec, triggers);
  registerResources(server);
  registerPrompts(server);
  server.server.setRequestHandler('logging/setLevel', async () => ({}));
  server.server.setRequestHandler('completion/complete', async () => ({ completion: { values: [], total: 0, hasMore: false } }));
  return server;
}

function registerResources(server: McpServer): void {
  server.registerResource('static-text', 'test://static-text', { description: 'A static text resource', mimeType: 'text/plain' }, async () => ({
    contents: [{ uri: 'test://static-text', mimeType: 'text/plain', text: 'This is the content of the static text resource.' }],
  }));
  server.registerResource('static-binary', 'test://static-binary', { description: 'A static binary resource', mimeType: 'image/png' }, async () => ({
    contents: [{ uri: 'test://static-binary', mimeType: 'image/png', blob: TEST_IMAGE_BASE64 }],
  }));
  server.registerResource(
    'template',
    new ResourceTemplate('test://template/{id}/data', { list: undefined }),
    { description: 'A resource template with parameter substitution', mimeType: 'application/json' },
    async (uri, { id }) => ({ contents: [{ uri: uri.toString(), mimeType: 'application/json', text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${String(id)}` }) }] }),
  );
  server.registerResource('watched-resource', 'test://watched-resource', { description: 'A resource clients subscribe to', mimeType: 'text/plain' }, async () => ({
    contents: [{ uri: 'test://watched-resource', mimeType: 'text/plain', text: 'Watched resource content' }],
  }));
  server.server.setRequestHandler('resources/subscribe', async () => ({}));
  server.server.setRequestHandler('resources/unsubscribe', async () => ({}));
}

function registerPrompts(server: McpServer): void {
  server.registerPrompt('test_simple_prompt', { description: 'A prompt without arguments' }, async () => ({
    messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }],
  }));
  server.registerPrompt(
    'test_prompt_with_arguments',
    { description: 'A prompt with two arguments', argsSchema: z.object({ arg1: z.string().describe('First argument'), arg2: z.string().describe('Second argument') }) },
    async ({ arg1, arg2 }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } }] }),
  );
  server.registerPrompt(
    'test_prompt_with_embedded_resource',
    { description: 'A prompt embedding a resource', argsSchema: z.object({ resourceUri: z.string().describe('URI of the resource to embed') }) },
    async ({ resourceUri }) => ({
      messages: [
        { role: 'user', content: { type: 'resource', resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
        { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } },
      ],
    }),
  );
  server.registerPrompt('test_prompt_with_image', { description: 'A prompt with an image' }, async () => ({
    messages: [
      { role: 'user', content: { type: 'image', data: TEST_IMAGE_BASE64, mimeType: 'image/png' } },
      { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
    ],
  }));
}

/** SEP-1699 resumability: events kept per stream so a client reconnecting with Last-Event-ID gets what it missed. */
function createEventStore(): EventStore {
  const events: Array<{ id: string; streamId: string; message: unknown }> = [];
  let sequence = 0;
  return {
    async storeEvent(streamId, message) {
      const id = `${streamId}_${String((sequence += 1)).padStart(8, '0')}`;
      events.push({ id, streamId, message });
      return id;
    },
    async getStreamIdForEventId(eventId) {
      return events.find((event) => event.id === eventId)?.streamId;
    },
    async replayEventsAfter(lastEventId, { send }) {
      const last = events.find((event) => event.id === lastEventId);
      if (!last) return '';
      for (const event of events) {
        if (event.streamId === last.streamId && event.id > lastEventId) await send(event.id, event.message as never);
      }
      return last.streamId;
    },
  };
}

export async function startConformanceBackend(): Promise<ConformanceBackend> {
  const codec = createRequestStateCodec<string>({ key: randomBytes(32) });
  let notifier: ListChangeTriggers = { toolsChanged: () => {}, promptsChanged: () => {} };
  const triggers: ListChangeTriggers = { toolsChanged: () => notifier.toolsChanged(), promptsChanged: () => notifier.promptsChanged() };
  const modern = createMcpHandler(() => buildServer(codec, triggers), { legacy: 'reject' });
  notifier = modern.notify;
  const eventStore = createEventStore();
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();

  async function legacy(request: Request): Promise<Response> {
    const sessionId = request.headers.get('mcp-session-id');
    const existing = sessionId ? sessions.get(sessionId) : undefined;
    if (existing) return existing.handleRequest(request);
    if (sessionId) return Response.json({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }, { status: 404 });
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore,
      onsessioninitialized: (id) => void sessions.set(id, transport),
      onsessionclosed: (id) => void sessions.delete(id),
    });
    await buildServer(codec, triggers).connect(transport);
    return transport.handleRequest(request);
  }

  async function route(request: Request): Promise<Response> {
    const rejected = hostHeaderValidationResponse(request, localhostAllowedHostnames());
    if (rejected) return rejected;
    if (await isLegacyRequest(request.clone())) return legacy(request);
    return modern.fetch(request);
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (new URL(req.url ?? '/', 'http://fixture').pathname !== '/mcp') return void res.writeHead(404).end();
    serveFetch(route, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}/mcp`,
    async close() {
      for (const transport of sessions.values()) await transport.close().catch(() => {});
      await modern.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
