import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  createMcpHandler,
  isInitializeRequest,
  isLegacyRequest,
  WebStandardStreamableHTTPServerTransport,
  type AuthInfo,
} from '@modelcontextprotocol/server';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { Logger } from 'pino';
import type { CapabilityDeps } from './capabilities.ts';
import { createToolServer } from './mcp-tools.ts';
import { sendJson } from './web-bridge.ts';
import { graphStepUpResponse } from './step-up-preflight.ts';

/**
 * Every MCP transport generation on one server, all built from the same tool definitions:
 *  - Streamable HTTP, protocol 2026-07-28: stateless, one server instance per request (SDK v2 `createMcpHandler`);
 *  - Streamable HTTP, 2025-11-25 and earlier: sessions (`Mcp-Session-Id`), routed with `isLegacyRequest`;
 *  - the legacy HTTP+SSE transport (2024-11-05): `GET /sse` + `POST /messages?sessionId=…` (SDK v1 transport).
 * Sessions are bound to the user who opened them: another user presenting the id gets 404, exactly as an unknown id.
 */
interface Session<T> {
  transport: T;
  subject: string;
}

/**
 * Sessions held at once, and by one user. Most clients never end theirs (no `DELETE`), so a full table is the normal
 * state of a long-running server, not an attack: the least recently used session ends to make room (its client gets
 * 404 and starts a new one), never the new one refused — a refusal let one user opening sessions in a loop keep every
 * other user out (503) until a restart.
 */
const maxSessions = 1_000;
const maxSessionsPerUser = 50;

function jsonRpcError(status: number, code: number, message: string): Response {
  return Response.json({ jsonrpc: '2.0', error: { code, message }, id: null }, { status });
}

export function createMcpTransports(deps: CapabilityDeps, logger: Logger) {
  const modern = createMcpHandler(() => createToolServer(deps), {
    legacy: 'reject',
    onerror: (error) => logger.debug({ reason: error.message }, 'mcp request rejected'),
  });
  const streamableSessions = new Map<string, Session<WebStandardStreamableHTTPServerTransport>>();
  const sseSessions = new Map<string, Session<SSEServerTransport>>();

  /**
   * Makes room in `sessions` for one more of `subject`: ends its least recently used past its share, or anyone's past
   * the total. Counted when a session is opened, so requests opening sessions at once may pass the bounds by as many.
   */
  async function makeRoomFor<T extends { close(): Promise<void> }>(sessions: Map<string, Session<T>>, subject: string): Promise<void> {
    // The Map's order is the order of use (a used session moves to its end): its first entries are the least recent.
    let own = 0;
    let oldestOwn: string | undefined;
    for (const [id, session] of sessions) {
      if (session.subject !== subject) continue;
      own += 1;
      oldestOwn ??= id;
    }
    const ending = own >= maxSessionsPerUser ? oldestOwn : sessions.size >= maxSessions ? sessions.keys().next().value : undefined;
    if (ending === undefined) return;
    const session = sessions.get(ending);
    sessions.delete(ending);
    await session?.transport.close().catch(() => undefined);
  }

  async function openStreamableSession(request: Request, subject: string, authInfo: AuthInfo, parsedBody: unknown): Promise<Response> {
    await makeRoomFor(streamableSessions, subject);
    const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        streamableSessions.set(id, { transport, subject });
      },
      onsessionclosed: (id) => {
        streamableSessions.delete(id);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) streamableSessions.delete(transport.sessionId);
    };
    await createToolServer(deps).connect(transport);
    return transport.handleRequest(request, { authInfo, parsedBody });
  }

  /** Streamable HTTP at `/mcp`, both generations. `body` is the already-read request body (bounded by the caller). */
  async function handleStreamableHttp(request: Request, body: Buffer | undefined, subject: string, authInfo: AuthInfo): Promise<Response> {
    let parsedBody: unknown;
    if (request.method === 'POST') {
      try {
        parsedBody = JSON.parse(body?.toString('utf8') ?? '');
      } catch {
        return jsonRpcError(400, -32700, 'Parse error: the body is not JSON.');
      }
      const stepUp = await graphStepUpResponse(deps, parsedBody, authInfo);
      if (stepUp !== undefined) return stepUp;
    }
    if (!(await isLegacyRequest(request, parsedBody))) return modern.fetch(request, { authInfo, parsedBody });

    const sessionId = request.headers.get('mcp-session-id');
    if (!sessionId) {
      if (request.method === 'POST' && isInitializeRequest(parsedBody)) return openStreamableSession(request, subject, authInfo, parsedBody);
      return jsonRpcError(400, -32000, 'Bad request: no session; start with initialize.');
    }
    const session = streamableSessions.get(sessionId);
    if (!session || session.subject !== subject) return jsonRpcError(404, -32001, 'Session not found.');
    // Used now: to the end of the order of use.
    streamableSessions.delete(sessionId);
    streamableSessions.set(sessionId, session);
    return session.transport.handleRequest(request, { authInfo, parsedBody });
  }

  /** Legacy HTTP+SSE: the stream. */
  async function openSseStream(res: ServerResponse, subject: string): Promise<void> {
    await makeRoomFor(sseSessions, subject);
    const transport = new SSEServerTransport('/messages', res);
    sseSessions.set(transport.sessionId, { transport, subject });
    transport.onclose = () => {
      sseSessions.delete(transport.sessionId);
    };
    res.on('close', () => {
      sseSessions.delete(transport.sessionId);
    });
    await createToolServer(deps).connect(transport);
  }

  /** Legacy HTTP+SSE: a message for an open stream. */
  async function postSseMessage(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse, url: URL, body: Buffer, subject: string, authInfo: AuthInfo): Promise<void> {
    const sessionId = url.searchParams.get('sessionId') ?? '';
    const session = sseSessions.get(sessionId);
    if (!session || session.subject !== subject) return sendJson(res, 404, { error: 'session_not_found' });
    // Used now: to the end of the order of use.
    sseSessions.delete(sessionId);
    sseSessions.set(sessionId, session);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return sendJson(res, 400, { error: 'invalid_json' });
    }
    // The v1 transport reads the verified identity from `req.auth` and hands it to handlers as authInfo.
    req.auth = authInfo;
    await session.transport.handlePostMessage(req, res, parsed);
  }

  async function close(): Promise<void> {
    await modern.close();
    await Promise.allSettled([...streamableSessions.values()].map((s) => s.transport.close()));
    await Promise.allSettled([...sseSessions.values()].map((s) => s.transport.close()));
    streamableSessions.clear();
    sseSessions.clear();
  }

  return { handleStreamableHttp, openSseStream, postSseMessage, close };
}
