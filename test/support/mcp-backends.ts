import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { z } from 'zod';
import { createMcpHandler, McpServer, WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/server';
import { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';

/**
 * Backend MCP servers built with the reference SDKs, for gateway tests and the benchmark:
 * - `v2-stateless`: `@modelcontextprotocol/server` `createMcpHandler` (2026-07-28 + stateless 2025 fallback),
 *   answering with JSON (`responseMode: 'json'`) or SSE (`'sse'`);
 * - `v2-session`: the v2 `WebStandardStreamableHTTPServerTransport` with session ids (2025-era sessions, GET stream,
 *   DELETE);
 * - `v1-sse`: `@modelcontextprotocol/sdk` v1 with the legacy HTTP+SSE transport (`GET /sse`, `POST /messages`).
 *
 * Each has the tools `echo`, `whoami` (returns the verified identity assertion's claims) and `secret_tool`, and
 * records the headers of every request so tests can prove the client's token never arrives.
 */
export type BackendKind = 'v2-stateless' | 'v2-session' | 'v1-sse';

export interface McpBackend {
  url: string;
  /** Headers of every HTTP request the backend received. */
  seenHeaders: IncomingHttpHeaders[];
  close(): Promise<void>;
}

export interface McpBackendOptions {
  kind: BackendKind;
  /** v2-stateless only. */
  responseMode?: 'json' | 'sse' | 'auto';
  /** When set, `whoami` verifies the identity assertion against this JWKS (the gateway's) and returns its claims. */
  identity?: () => { jwks: JSONWebKeySet; issuer: string; audience: string };
  /** The backend's path for the MCP endpoint (streamable kinds). */
  path?: string;
  /**
   * The description `echo` is listed with, read each time a server is built (per request for v2-stateless, per
   * stream for v1-sse): a test swaps it to play a backend that rewrites a tool after it was approved (a rug pull).
   */
  echoDescription?: () => string;
  /** Keep every request's headers in `seenHeaders` (default true; the benchmark turns it off). */
  recordHeaders?: boolean;
}

const identityStore = new AsyncLocalStorage<{ authorization: string | undefined }>();

type Whoami = () => Promise<JWTPayload | { error: string }>;

function whoamiFor(options: McpBackendOptions): Whoami {
  return async () => {
    const authorization = identityStore.getStore()?.authorization;
    if (!options.identity) return { error: 'no identity verification configured' };
    const expected = options.identity();
    const token = authorization?.replace(/^Bearer /i, '') ?? '';
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet(expected.jwks), {
        issuer: expected.issuer,
        audience: expected.audience,
        typ: 'gatehouse-id+jwt',
      });
      return payload;
    } catch (error) {
      return { error: `identity assertion rejected: ${(error as Error).message}` };
    }
  };
}

const text = (value: string) => ({ content: [{ type: 'text' as const, text: value }] });

function buildV2Server(whoami: Whoami, echoDescription = 'Echoes its input'): McpServer {
  const server = new McpServer({ name: 'fixture-v2', version: '1.0.0' });
  server.registerTool('echo', { description: echoDescription, inputSchema: z.object({ text: z.string() }) }, async ({ text: value }) => text(value));
  server.registerTool('whoami', { description: 'Who the gateway says you are' }, async () => text(JSON.stringify(await whoami())));
  server.registerTool('secret_tool', { description: 'Needs extra permission' }, async () => text('the secret'));
  return server;
}

function buildV1Server(whoami: Whoami, echoDescription = 'Echoes its input'): McpServerV1 {
  const server = new McpServerV1({ name: 'fixture-v1', version: '1.0.0' });
  server.registerTool('echo', { description: echoDescription, inputSchema: { text: z.string() } }, async ({ text: value }) => text(value));
  server.registerTool('whoami', { description: 'Who the gateway says you are' }, async () => text(JSON.stringify(await whoami())));
  server.registerTool('secret_tool', { description: 'Needs extra permission' }, async () => text('the secret'));
  return server;
}

/** node:http ⇄ fetch-shaped handler, streaming both ways. */
export async function serveFetch(handler: (request: Request) => Promise<Response>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const controller = new AbortController();
  res.once('close', () => controller.abort());
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const request = new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, {
    method: req.method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream) : undefined,
    signal: controller.signal,
    ...(hasBody ? { duplex: 'half' } : {}),
  } as RequestInit);
  const response = await handler(request);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (!response.body) return void res.end();
  Readable.fromWeb(response.body as import('node:stream/web').ReadableStream).on('error', () => res.destroy()).pipe(res);
}

export async function startMcpBackend(options: McpBackendOptions): Promise<McpBackend> {
  const seenHeaders: IncomingHttpHeaders[] = [];
  const whoami = whoamiFor(options);
  const path = options.path ?? '/mcp';
  let listener: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  const cleanups: Array<() => Promise<void> | void> = [];

  if (options.kind === 'v2-stateless') {
    const handler = createMcpHandler(() => buildV2Server(whoami, options.echoDescription?.()), { responseMode: options.responseMode ?? 'auto' });
    cleanups.push(() => handler.close());
    listener = (req, res) => serveFetch((request) => handler.fetch(request), req, res);
  } else if (options.kind === 'v2-session') {
    const transports = new Map<string, WebStandardStreamableHTTPServerTransport>();
    cleanups.push(async () => {
      for (const transport of transports.values()) await transport.close();
    });
    listener = (req, res) =>
      serveFetch(async (request) => {
        const sessionId = request.headers.get('mcp-session-id');
        const existing = sessionId ? transports.get(sessionId) : undefined;
        if (existing) return existing.handleRequest(request);
        if (sessionId) return Response.json({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }, { status: 404 });
        const transport = new WebStandardStreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void transports.set(id, transport),
          onsessionclosed: (id) => void transports.delete(id),
        });
        await buildV2Server(whoami, options.echoDescription?.()).connect(transport);
        return transport.handleRequest(request);
      }, req, res);
  } else {
    const transports = new Map<string, SSEServerTransport>();
    listener = async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://backend');
      if (req.method === 'GET' && url.pathname === '/sse') {
        const transport = new SSEServerTransport('/messages', res);
        transports.set(transport.sessionId, transport);
        res.once('close', () => transports.delete(transport.sessionId));
        await buildV1Server(whoami, options.echoDescription?.()).connect(transport);
        return;
      }
      const transport = transports.get(url.searchParams.get('sessionId') ?? '');
      if (req.method === 'POST' && url.pathname === '/messages' && transport) return transport.handlePostMessage(req, res);
      res.writeHead(404).end();
    };
  }

  const server: Server = createServer((req, res) => {
    if (options.recordHeaders !== false) seenHeaders.push(req.headers);
    const pathOk = options.kind === 'v1-sse' || new URL(req.url ?? '/', 'http://backend').pathname === path;
    if (!pathOk) return void res.writeHead(404).end();
    identityStore.run({ authorization: req.headers.authorization }, () => {
      listener(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: options.kind === 'v1-sse' ? `http://127.0.0.1:${port}` : `http://127.0.0.1:${port}${path}`,
    seenHeaders,
    async close() {
      for (const cleanup of cleanups) await cleanup();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
