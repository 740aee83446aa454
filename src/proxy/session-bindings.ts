import type { Store } from '../store/store.ts';
import { legacySseSessionRecord, mcpSessionRecord } from '../records/proxy.ts';
import { createRecord, deleteRecord, readRecord } from '../store/record-access.ts';
import { jsonRpcCodes, ProtocolError } from '../errors/protocol-error.ts';

/**
 * MCP session ids bound to the user who created them. A session id is a routing handle, not a credential (MCP
 * security best practices, "session hijacking"): if a second user learnt one, their own valid token must not let them
 * into it. The binding lives in the store so every replica enforces it; bindings never change once written, so each
 * replica caches them.
 *
 * Two kinds share this: Streamable HTTP `Mcp-Session-Id` values issued by the backend (namespace `mcp-session`), and
 * legacy HTTP+SSE sessions issued by the gateway itself (namespace `legacy-sse-session`), which also carry the backend
 * message URL so whichever replica receives the POST can route it.
 *
 * The cache is what keeps the store off the per-message path (a legacy SSE POST otherwise reads the mapping every
 * time): least recently used, bounded, and dropped when the session ends. Caching the binding never caches the
 * decision: owner and route are compared on every request, and the token itself (expiry, revocation) is checked
 * before the session is looked up.
 */
export interface SessionBinding {
  subject: string;
  route: string;
  /** The OAuth client that opened the session; absent in a binding written before it was kept (any client). */
  clientId?: string;
  createdAt: number;
  /** Legacy SSE only: the backend's message endpoint for this session. */
  backendMessageUrl?: string;
}

export type SessionKind = 'mcp-session' | 'legacy-sse-session';

/** Declared in src/records/proxy.ts. An invalid binding is an error (GH_RECORD_INVALID), never a session to serve. */
const bindingRecords = { 'mcp-session': mcpSessionRecord, 'legacy-sse-session': legacySseSessionRecord } as const;

export interface SessionBindings {
  bind(kind: SessionKind, sessionId: string, binding: SessionBinding, ttlSeconds: number): Promise<void>;
  /** The binding, if this subject owns the session on this route; otherwise 404 (never revealing it exists). */
  require(kind: SessionKind, sessionId: string, owner: { subject: string; clientId: string }, route: string): Promise<SessionBinding>;
  forget(kind: SessionKind, sessionId: string): Promise<void>;
}

/**
 * An unknown, ended or foreign session: HTTP 404, which tells a client to start a new session (MCP 2025-11-25
 * basic/transports §Session Management), with the MCP SDK servers' JSON-RPC code and message. Never -32601: the
 * method exists, the session does not.
 */
export const sessionNotFound = () => new ProtocolError('not_found', 'Session not found', { jsonRpcCode: jsonRpcCodes.sessionNotFound });

export function createSessionBindings(store: Store, maxCached = 50_000): SessionBindings {
  const cache = new Map<string, SessionBinding>();
  const remember = (key: string, binding: SessionBinding) => {
    if (cache.size >= maxCached) cache.delete(cache.keys().next().value as string);
    cache.set(key, binding);
  };
  return {
    async bind(kind, sessionId, binding, ttlSeconds) {
      // setIfAbsent: the first user to present a session id owns it; a later writer cannot take it over.
      const record = bindingRecords[kind];
      await createRecord(store, record, sessionId, binding, { ttlSeconds, indexes: { subject: binding.subject } });
      const stored = await readRecord(store, record, sessionId);
      if (stored) remember(`${kind}\u0000${sessionId}`, stored);
    },
    async require(kind, sessionId, owner, route) {
      const key = `${kind}\u0000${sessionId}`;
      let binding = cache.get(key);
      if (binding) {
        // Least recently used: a hit moves to the end, so long-lived busy sessions are not evicted by new ones.
        cache.delete(key);
        cache.set(key, binding);
      } else {
        binding = await readRecord(store, bindingRecords[kind], sessionId);
        if (!binding) throw sessionNotFound();
        remember(key, binding);
      }
      // The user's other clients too are strangers to the session: each MCP client opens its own.
      if (binding.subject !== owner.subject || binding.route !== route) throw sessionNotFound();
      if (binding.clientId !== undefined && binding.clientId !== owner.clientId) throw sessionNotFound();
      return binding;
    },
    async forget(kind, sessionId) {
      cache.delete(`${kind}\u0000${sessionId}`);
      await deleteRecord(store, bindingRecords[kind], sessionId);
    },
  };
}
