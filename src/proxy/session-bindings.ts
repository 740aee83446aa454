import { StoreUnavailableError, type Store } from '../store/store.ts';
import type { Unsubscribe } from '../store/store.ts';
import { legacySseSessionRecord, mcpSessionRecord, sessionEndedChannel } from '../records/proxy.ts';
import { createRecord, deleteRecord, findRecordPage, publishMessage, readRecord, subscribeChannel, writeRecord } from '../store/record-access.ts';
import { jsonRpcCodes, ProtocolError } from '../errors/protocol-error.ts';
import { systemClock, type Clock } from '../runtime/clock.ts';

/**
 * MCP session ids bound to the user who created them. A session id is a routing handle, not a credential (MCP
 * security best practices, "session hijacking"): if a second user learnt one, their own valid token must not let them
 * into it. The binding lives in the store so every replica enforces it, and each replica caches it: a binding
 * changes only when the backend issues its id again (bind), which every replica is told of, and a cached copy is read
 * again after a minute, so a replica that missed that message lets the earlier owner in for a minute at most.
 *
 * Two kinds share this: Streamable HTTP `Mcp-Session-Id` values issued by the backend (namespace `mcp-session`), and
 * legacy HTTP+SSE sessions issued by the gateway itself (namespace `legacy-sse-session`), which also carry the backend
 * message URL so whichever replica receives the POST can route it.
 *
 * The cache is what keeps the store off the per-message path (a legacy SSE POST otherwise reads the mapping every
 * time): least recently used, bounded, read again after CACHED_BINDING_MS, and dropped when the session ends.
 * Caching the binding never caches the decision: owner and route are compared on every request, and the token itself
 * (expiry, revocation) is checked before the session is looked up.
 *
 * A session's end is told to every replica (`session-ended`): each drops its cached binding, so a request naming the
 * ended session is refused at the gateway whichever replica it reaches, and cuts the session's streams it carries
 * (open-streams.ts). Pub/sub is at most once: a replica that misses the message keeps its copy for up to a minute,
 * which lets a request through only to a backend that has ended the session itself — or, for an id the backend
 * issued again, lets the earlier owner reach the new owner's session on that replica for that minute.
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

/** The same user, client and route: a binding written again for its own owner changes nothing and ends nothing. */
const sameOwner = (a: SessionBinding, b: SessionBinding) => a.subject === b.subject && a.clientId === b.clientId && a.route === b.route;

/** Declared in src/records/proxy.ts. An invalid binding is an error (GH_RECORD_INVALID), never a session to serve. */
const bindingRecords = { 'mcp-session': mcpSessionRecord, 'legacy-sse-session': legacySseSessionRecord } as const;

export interface SessionBindings {
  bind(kind: SessionKind, sessionId: string, binding: SessionBinding, ttlSeconds: number): Promise<void>;
  /** The binding, if this subject owns the session on this route; otherwise 404 (never revealing it exists). */
  require(kind: SessionKind, sessionId: string, owner: { subject: string; clientId: string }, route: string): Promise<SessionBinding>;
  /**
   * This user's Streamable HTTP sessions on this route, of every client, oldest first: a page of at most `limit`, in
   * the store's order before sorting (a user within the limit has them all in it).
   */
  sessionsOf(owner: { subject: string; route: string }, limit: number): Promise<ListedSession[]>;
  /**
   * Forgets a Streamable HTTP session (as `forget`) only if it is still the one `sessionsOf` listed, and only once:
   * true for the one caller whose delete removed it (it alone ends it at the backend).
   */
  forgetOwned(listed: ListedSession, owner: { subject: string; route: string }): Promise<boolean>;
  /**
   * Deletes the binding and tells every replica, this one included, that the session ended. While the store is
   * unavailable the session still ends on this replica at once, and the deletion is retried in the background (see
   * `deferDelete`): the backend has ended the session by then, and its client must hear so, not a 503.
   */
  forget(kind: SessionKind, sessionId: string): Promise<void>;
  /**
   * The binding as the store holds it now, past this replica's cache: for a stream of a session that ended lately
   * (open-streams.ts), whether the binding that admitted it is still the one under its id.
   */
  current(kind: SessionKind, sessionId: string): Promise<SessionBinding | undefined>;
  /**
   * Subscribes to the ends of sessions (`session-ended`); `onEnded` is called for each end this replica learns of,
   * its own included (at once, and again when its message comes back). Call before serving traffic.
   */
  start(onEnded: (kind: SessionKind, sessionId: string) => void): Promise<void>;
  stop(): Promise<void>;
}

/**
 * An unknown, ended or foreign session: HTTP 404, which tells a client to start a new session (MCP 2025-11-25
 * basic/transports §Session Management), with the MCP SDK servers' JSON-RPC code and message. Never -32601: the
 * method exists, the session does not.
 */
export const sessionNotFound = () => new ProtocolError('not_found', 'Session not found', { jsonRpcCode: jsonRpcCodes.sessionNotFound });

/** Deletions retried after a store outage: a few, spaced out, and only so many waiting at once. */
export interface DeferredDeleteOptions {
  /** The first retry's delay; each next one waits twice as long. */
  firstDelayMs?: number;
  tries?: number;
  maxWaiting?: number;
}

/** The `owner` index of a Streamable HTTP session: a user's sessions on one route (no space in a route path). */
const ownerKey = (owner: { subject: string; route: string }) => `${owner.route} ${owner.subject}`;

/** A session as `sessionsOf` lists it: enough to end that one and no other (its id may be issued again). */
export interface ListedSession {
  sessionId: string;
  clientId: string | undefined;
  createdAt: number;
}

/** How long a replica trusts its cached copy of a binding before reading the store again. */
const CACHED_BINDING_MS = 60_000;

export function createSessionBindings(store: Store, maxCached = 50_000, deferred: DeferredDeleteOptions = {}, clock: Pick<Clock, 'now'> = systemClock): SessionBindings {
  const { firstDelayMs = 1_000, tries = 5, maxWaiting = 10_000 } = deferred;
  const cache = new Map<string, { binding: SessionBinding; readAt: number }>();
  const waiting = new Map<string, NodeJS.Timeout>();
  // Set by stop(): a retry already running then schedules no other (its store is closing).
  let stopped = false;
  let onEnded: ((kind: SessionKind, sessionId: string) => void) | undefined;
  let unsubscribe: Unsubscribe | undefined;
  // Also run when this replica's own message comes back: by then there is nothing left to drop or cut.
  const ended = (kind: SessionKind, sessionId: string) => {
    cache.delete(`${kind}\u0000${sessionId}`);
    onEnded?.(kind, sessionId);
  };
  const remember = (key: string, binding: SessionBinding) => {
    if (cache.size >= maxCached) cache.delete(cache.keys().next().value as string);
    cache.set(key, { binding, readAt: clock.now() });
  };
  /**
   * Tells every replica the session ended (`session-ended`). Best effort: the record is gone or rewritten, which is
   * what every replica's next cache miss reads; a message lost here leaves only other replicas' cached copies (read
   * again within a minute) and open streams, as a message lost in transit would.
   */
  const tellEnded = (kind: SessionKind, sessionId: string): Promise<void> => publishMessage(store, sessionEndedChannel, `${kind} ${sessionId}`).catch(() => {});
  async function deleteAndTell(kind: SessionKind, sessionId: string): Promise<void> {
    await deleteRecord(store, bindingRecords[kind], sessionId);
    await tellEnded(kind, sessionId);
  }
  /**
   * The binding of an ended session the store could not delete. Left alone it would outlive the session by up to its
   * TTL (a day): harmless to the session's owner, whom the backend answers 404, but other replicas would keep their
   * cached copies and the streams of it they carry. Retried a few times, doubling the wait; after the last try (or
   * beyond `maxWaiting`) the TTL removes it.
   */
  function deferDelete(kind: SessionKind, sessionId: string, attempt: number): void {
    const key = `${kind}\u0000${sessionId}`;
    if (stopped || attempt >= tries || (!waiting.has(key) && waiting.size >= maxWaiting)) {
      waiting.delete(key);
      return;
    }
    clearTimeout(waiting.get(key));
    const timer = setTimeout(() => {
      deleteAndTell(kind, sessionId).then(
        () => waiting.delete(key),
        (error: unknown) => (error instanceof StoreUnavailableError ? deferDelete(kind, sessionId, attempt + 1) : waiting.delete(key)),
      );
    }, firstDelayMs * 2 ** attempt);
    timer.unref();
    waiting.set(key, timer);
  }

  return {
    async bind(kind, sessionId, binding, ttlSeconds) {
      const record = bindingRecords[kind];
      const options = { ttlSeconds, indexes: kind === 'mcp-session' ? { subject: binding.subject, owner: ownerKey(binding) } : { subject: binding.subject } };
      if (!(await createRecord(store, record, sessionId, binding, options))) {
        // The id is bound already. Only the backend issues an id (a client naming one it was not issued is refused
        // before the backend is asked), so issuing it again means that session is over at the backend: one whose
        // ids repeat — a counter restarted — has given it to this user. Kept for the earlier owner, it refused the
        // new owner every request and let the earlier one into the new owner's session. The earlier owner's session
        // ends, here and on every replica (cached copies, streams).
        const earlier = await readRecord(store, record, sessionId);
        // Only for the same route, that is the same backend: another route's backend issuing the same id says
        // nothing of this one's session, which stays its owner's (the new user is refused it, as before).
        if (earlier === undefined || (earlier.route === binding.route && !sameOwner(earlier, binding))) {
          await writeRecord(store, record, sessionId, binding, options);
          if (earlier !== undefined) {
            ended(kind, sessionId);
            await tellEnded(kind, sessionId);
          }
        }
      }
      const stored = await readRecord(store, record, sessionId);
      if (stored) remember(`${kind}\u0000${sessionId}`, stored);
    },
    async require(kind, sessionId, owner, route) {
      const key = `${kind}\u0000${sessionId}`;
      const cached = cache.get(key);
      let binding: SessionBinding | undefined;
      if (cached !== undefined && clock.now() - cached.readAt < CACHED_BINDING_MS) {
        // Least recently used: a hit moves to the end, so long-lived busy sessions are not evicted by new ones.
        cache.delete(key);
        cache.set(key, cached);
        binding = cached.binding;
      } else {
        try {
          binding = await readRecord(store, bindingRecords[kind], sessionId);
        } catch (error) {
          // A store outage: the copy this replica has serves on, as every cached binding did before copies were read
          // again (the sessions of a replica that keeps serving through an outage, docs/operations.md).
          if (!(error instanceof StoreUnavailableError) || cached === undefined) throw error;
          binding = cached.binding;
        }
        if (!binding) {
          cache.delete(key);
          throw sessionNotFound();
        }
        if (binding !== cached?.binding) remember(key, binding);
      }
      // The user's other clients too are strangers to the session: each MCP client opens its own.
      if (binding.subject !== owner.subject || binding.route !== route) throw sessionNotFound();
      if (binding.clientId !== undefined && binding.clientId !== owner.clientId) throw sessionNotFound();
      return binding;
    },
    async sessionsOf(owner, limit) {
      const { entries } = await findRecordPage(store, mcpSessionRecord, 'owner', ownerKey(owner), { limit });
      return entries
        .sort((a, b) => a.value.createdAt - b.value.createdAt)
        .map((entry) => ({ sessionId: entry.key, clientId: entry.value.clientId, createdAt: entry.value.createdAt }));
    },
    async forgetOwned(listed, owner) {
      // Read again just before: the id may have been issued again since it was listed (a backend whose ids repeat,
      // bind), and that session is its new owner's.
      const binding = await readRecord(store, mcpSessionRecord, listed.sessionId);
      const same =
        binding !== undefined && binding.subject === owner.subject && binding.route === owner.route && binding.clientId === listed.clientId && binding.createdAt === listed.createdAt;
      if (!same) return false;
      // Two openings at once (on two replicas) list the same surplus: only the one whose delete removed the record
      // goes on, so the backend is sent one DELETE, not one per opening. A store that cannot say: ended as `forget`
      // ends a session (here at once, the delete retried).
      let deleted: boolean;
      try {
        deleted = await deleteRecord(store, mcpSessionRecord, listed.sessionId);
      } catch (error) {
        if (!(error instanceof StoreUnavailableError)) throw error;
        await this.forget('mcp-session', listed.sessionId);
        return true;
      }
      if (!deleted) return false;
      ended('mcp-session', listed.sessionId);
      await tellEnded('mcp-session', listed.sessionId);
      return true;
    },
    current: (kind, sessionId) => readRecord(store, bindingRecords[kind], sessionId),
    async forget(kind, sessionId) {
      // This replica first, whatever the store does: its cached copy and the streams it carries end with the session.
      ended(kind, sessionId);
      try {
        await deleteAndTell(kind, sessionId);
      } catch (error) {
        if (!(error instanceof StoreUnavailableError)) throw error;
        deferDelete(kind, sessionId, 0);
      }
    },
    async start(listener) {
      stopped = false;
      onEnded = listener;
      unsubscribe = await subscribeChannel(store, sessionEndedChannel, (message) => {
        const space = message.indexOf(' ');
        const kind = message.slice(0, space);
        if (space > 0 && (kind === 'mcp-session' || kind === 'legacy-sse-session')) ended(kind, message.slice(space + 1));
      });
    },
    async stop() {
      stopped = true;
      for (const timer of waiting.values()) clearTimeout(timer);
      waiting.clear();
      onEnded = undefined;
      await unsubscribe?.();
      unsubscribe = undefined;
    },
  };
}
