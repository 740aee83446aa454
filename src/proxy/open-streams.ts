import type { ServerResponse } from 'node:http';
import type { Clock } from '../runtime/clock.ts';
import type { AuditDraft } from './request-audit.ts';
import { ACCESS_TOKEN_CLOCK_SKEW_SECONDS } from './verify-access-token.ts';

/**
 * The streams open on this replica, by grant and by MCP session, so that ending either ends its streams too, and a
 * stream a client listens on ends with its token. Every request is checked, but a stream is one request: an SSE stream opened before the end
 * (a Streamable HTTP `GET`, a legacy `/sse` stream, a long tool call answered over SSE) kept carrying server messages
 * to the client — for the idle timeout, or for ever with a backend that sends keep-alives.
 * - A grant's end reaches every replica within a second (src/grants/revoked-grants.ts); each replica then cuts its
 *   own streams of that grant here, as a network cut would, and the client's reconnect meets the refusal every new
 *   request meets.
 * - A session's end (a successful `DELETE`) reaches every replica through session-bindings.ts; a backend that keeps
 *   the session's streams open after its `DELETE` no longer keeps them open through the gateway, whichever replica
 *   carries them.
 * - A replica that can no longer learn of grant ends (its revocation list stale past
 *   `authorization.revocationMaxStalenessSeconds`, the store out of reach) cuts them all, as it refuses new requests
 *   then: a stream of a grant ended meanwhile kept flowing for the whole outage.
 * - A stream a client listens on ends when the access token that opened it does (its `exp`, with the bearer check's
 *   skew): a stolen token is bounded by its lifetime, but a stream it opened kept relaying for the idle timeout, or for
 *   ever with a backend that sends keep-alives. A Streamable HTTP GET stream and a 2026-07-28 `subscriptions/listen`
 *   end then: the client opens them again with a fresh token (MCP clients reopen a closed listening stream). A legacy
 *   `/sse` stream is its session, which MCP clients — refreshing only after a 401 — lost every token lifetime if it
 *   ended then: it ends a grace (the route's `idleStreamMs`) after its token, unless the session's messages, posted
 *   with fresh tokens, moved it on. A later request of the same grant in the same session, with a fresh token, moves
 *   the end of that session's streams on (extendSession). A POST's answer is bounded by its request and never cut at
 *   its token's end (a tool's result was lost after it ran, and a retry ran it twice).
 */
/** Why a stream is cut or not started: the `reason` of its audit record. */
export type StreamCutReason = 'grant ended' | 'revocations cannot be checked' | 'signing key removed' | 'scopes no longer enough' | 'token expired' | 'session ended';

/** What a stream was admitted with. */
export interface StreamCaller {
  grantId: string;
  /** Its token's `exp` (epoch seconds), for a stream that ends with its token (a listening stream): cut when the bearer check would refuse it. */
  exp?: number | undefined;
  /** How long after its token's end it is cut (a legacy stream: the session's grace to post with a fresh token). */
  graceMs?: number | undefined;
  /** The session it belongs to, if any: a Streamable HTTP `Mcp-Session-Id`, or the gateway's legacy SSE session id. */
  sessionId?: string | undefined;
  /**
   * For a session that ended lately (endedLately), when the request found the binding that admitted it still under
   * its id, on the runtime clock: an end heard after that is this session's. Unset, any end in the window is.
   */
  sessionCheckedAt?: number | undefined;
  /** The key that signed its token. */
  kid?: string | undefined;
  /** The route it runs on, and its token's scopes: a reload that raises the route's required scopes ends it. */
  route: string;
  scopes: readonly string[];
}

export interface OpenStreams {
  /**
   * Why a stream of `caller` may not start now, or nothing: asked before its headers go out, so the client is
   * answered as a new request would be (exchange.ts refuseStreamNoLongerAdmitted).
   */
  refusal(caller: StreamCaller): StreamCutReason | undefined;
  /** Registers a stream carried by `response`, admitted for `caller`; it is forgotten when the response closes. */
  track(response: ServerResponse, draft: AuditDraft, caller: StreamCaller): void;
  /** Cuts every open stream of the grant (audited `server_closed`, reason `grant ended`); returns how many. */
  closeGrant(grantId: string): number;
  /**
   * Cuts every open stream of the session (audited `server_closed`, reason `session ended`); returns how many. The end
   * is remembered for a while: a stream of the id its backend answers later is refused unless the request found its
   * binding still in place after the end (endedLately, refusal).
   */
  closeSession(sessionId: string): number;
  /** Whether a session of this id ended on this replica's hearing within the last RECENT_END_MS. */
  endedLately(sessionId: string): boolean;
  /** Cuts every open stream (audited `server_closed` with `reason`); returns how many. */
  closeAll(reason: string): number;
  /**
   * Cuts every open stream whose token was signed by a key not in `liveKids` (audited `server_closed`, reason
   * `signing key removed`): a token of a revoked key is refused from then on, and a grant id a forger made up can
   * never be revoked to end its streams. Returns how many.
   */
  closeSignedByOtherKeys(liveKids: ReadonlySet<string>): number;
  /**
   * Cuts every open stream on a route of `required` whose token lacks one of the scopes the route now requires
   * (audited `server_closed`, reason `scopes no longer enough`): a reload raised them, and the stream is one request,
   * admitted under the old ones. Returns how many.
   */
  closeOutOfScope(required: ReadonlyMap<string, readonly string[]>): number;
  /**
   * A request of the session authorized with a fresh token (`caller`): the session's open streams of the same grant
   * live on to that token's end (and the stream's grace), filed under its signing key — cut when that key is removed,
   * not the first token's (a key retired after a rotation cut every session kept since). Never another grant's (the
   * session's owner may hold several: the stream would then outlive the grant it is cut with), never one with fewer
   * scopes than the stream's (its `tools/list` screen was judged under them), never shortened.
   */
  extendSession(sessionId: string, caller: Pick<StreamCaller, 'grantId' | 'kid' | 'scopes'> & { exp: number }): void;
}

interface OpenStream {
  response: ServerResponse;
  draft: AuditDraft;
  route: string;
  grantId: string;
  scopes: readonly string[];
  /** When it is cut, in ms on the runtime clock: its token's end and grace, moved on by extendSession; never, for a stream that does not end with its token. */
  endsAt: number;
  graceMs: number;
  /** The key of the token it lives on now (it is cut with that key), and how to unfile it from that key's group. */
  kid: string | undefined;
  forgetKey: (() => void) | undefined;
}

/** How often open streams are checked for a token that expired: a stream outlives its token by at most this. */
const EXPIRY_SWEEP_MS = 1_000;

/** The moment (ms) the bearer check starts refusing a token of this `exp` (verify-access-token.ts). */
const tokenEndsAt = (exp: number | undefined): number => (exp === undefined ? Number.POSITIVE_INFINITY : (exp + ACCESS_TOKEN_CLOCK_SKEW_SECONDS) * 1000);

function cut({ response, draft }: OpenStream, reason: string): void {
  draft.outcome ??= 'server_closed';
  draft.reason ??= reason;
  // As a network cut: the backend request is aborted with it (relay-response.ts), and the client reconnects.
  response.destroy();
}

/** Streams grouped under one key; a group is dropped with its last stream. */
class StreamGroups {
  readonly #groups = new Map<string, Set<OpenStream>>();

  add(key: string, stream: OpenStream): () => void {
    let streams = this.#groups.get(key);
    if (streams === undefined) this.#groups.set(key, (streams = new Set()));
    streams.add(stream);
    const held = streams;
    return () => {
      held.delete(stream);
      if (held.size === 0 && this.#groups.get(key) === held) this.#groups.delete(key);
    };
  }

  closeWhere(select: (key: string) => boolean, reason: string): number {
    let closed = 0;
    // Deleting the entry being visited does not disturb a Map's iteration.
    for (const key of this.#groups.keys()) if (select(key)) closed += this.close(key, reason);
    return closed;
  }

  forEach(key: string, visit: (stream: OpenStream) => void): void {
    const streams = this.#groups.get(key);
    if (streams !== undefined) for (const stream of streams) visit(stream);
  }

  close(key: string, reason: string): number {
    const streams = this.#groups.get(key);
    if (streams === undefined) return 0;
    this.#groups.delete(key);
    for (const stream of streams) cut(stream, reason);
    return streams.size;
  }

  /** Cuts the streams `select` picks, in whatever group; each leaves its groups as its response closes. */
  closeStreams(select: (stream: OpenStream) => boolean, reason: string): number {
    let closed = 0;
    for (const streams of this.#groups.values()) {
      for (const stream of streams) {
        if (!select(stream)) continue;
        cut(stream, reason);
        closed += 1;
      }
    }
    return closed;
  }
}

export interface OpenStreamsOptions {
  /** The runtime's clock: token ends are read on it (a ManualClock in tests). */
  clock: Clock;
  /**
   * Why a stream of `caller` must not start (its grant ended, the revocation list stale, its key revoked, its route's
   * required scopes raised beyond its token's by a reload), or nothing; its token's expiry is checked here.
   */
  cutNow?: (caller: StreamCaller) => StreamCutReason | undefined;
}

/** How long a session's end refuses streams of it that its backend answers late: longer than a backend's header wait. */
const RECENT_END_MS = 5 * 60_000;
/** Most session ends remembered for that (an entry is a session id and a number). */
const MAX_RECENT_ENDS = 10_000;

/**
 * A stream is tracked once its backend answered, after the request's own check: an end, an expiry or a stale list in
 * between (a backend slow to send its headers) found nothing to cut, and the stream then flowed on. The transports ask
 * `refusal` just before tracking and answer the request as its own check would have; `track` asks again, so a stream
 * no transport asked about is still cut rather than carried.
 */
export function createOpenStreams({ clock, cutNow = () => undefined }: OpenStreamsOptions): OpenStreams {
  const byGrant = new StreamGroups();
  const bySession = new StreamGroups();
  const byKey = new StreamGroups();
  // Sessions ended lately (a DELETE here, or told by another replica): a stream of one that its backend answered
  // only after the end (a GET sent just before the DELETE, its headers late) found nothing to cut it, and flowed on.
  // Kept as long as a backend may take to answer (RECENT_END_MS), at most MAX_RECENT_ENDS of them.
  const recentEnds = new Map<string, number>();
  // Which session an end was of is the store's to say, not the clocks': a backend may issue an ended id again (a fixed
  // or restarted id, to the same user or another). A stream of an id ended lately is served only when its request
  // found, after the end, the binding that admitted it still under the id (streamable-http.ts), on this replica's clock.
  const endedAt = (sessionId: string | undefined): number | undefined => {
    const at = sessionId === undefined ? undefined : recentEnds.get(sessionId);
    return at !== undefined && clock.now() - at < RECENT_END_MS ? at : undefined;
  };
  const refusal = (caller: StreamCaller): StreamCutReason | undefined => {
    if (tokenEndsAt(caller.exp) + (caller.graceMs ?? 0) <= clock.now()) return 'token expired';
    const ended = endedAt(caller.sessionId);
    if (ended !== undefined && (caller.sessionCheckedAt === undefined || ended >= caller.sessionCheckedAt)) return 'session ended';
    return cutNow(caller);
  };

  // One sweep timer for the replica, not a timer per stream: the bench holds 10,000 idle streams and counts the bytes
  // each holds (docs/performance.md, "Memory per stream"), and a Timeout is an object with its list links per stream.
  // It reads the injected clock (so a ManualClock drives it), runs only while a stream is open, never holds the
  // process up, and walks the streams only once the earliest end may have come: extensions only push ends later, so
  // `earliest` stays a lower bound until the walk that reaches it sets it anew.
  let open = 0;
  let earliest = Number.POSITIVE_INFINITY;
  let sweep: ReturnType<typeof setInterval> | undefined;
  const cutExpired = () => {
    const now = clock.now();
    if (now < earliest) return;
    earliest = Number.POSITIVE_INFINITY;
    byGrant.closeStreams((stream) => {
      if (stream.endsAt <= now) return true;
      earliest = Math.min(earliest, stream.endsAt);
      return false;
    }, 'token expired');
  };

  return {
    refusal,
    track(response, draft, caller) {
      const { grantId, sessionId, kid, route, scopes, exp, graceMs = 0 } = caller;
      if (response.closed || response.destroyed) return;
      const reason = refusal(caller);
      if (reason !== undefined) {
        draft.outcome ??= 'server_closed';
        draft.reason ??= reason;
        response.destroy();
        return;
      }
      const stream: OpenStream = { response, draft, route, grantId, scopes, endsAt: tokenEndsAt(exp) + graceMs, graceMs, kid, forgetKey: undefined };
      const forgetGrant = byGrant.add(grantId, stream);
      const forgetSession = sessionId === undefined ? undefined : bySession.add(sessionId, stream);
      stream.forgetKey = kid === undefined ? undefined : byKey.add(kid, stream);
      earliest = Math.min(earliest, stream.endsAt);
      open += 1;
      if (sweep === undefined) (sweep = setInterval(cutExpired, EXPIRY_SWEEP_MS)).unref();
      response.on('close', () => {
        forgetGrant();
        forgetSession?.();
        stream.forgetKey?.();
        open -= 1;
        if (open === 0) {
          clearInterval(sweep);
          sweep = undefined;
          earliest = Number.POSITIVE_INFINITY;
        }
      });
    },
    extendSession(sessionId, { grantId, exp, kid, scopes }) {
      bySession.forEach(sessionId, (stream) => {
        if (stream.grantId !== grantId || !stream.scopes.every((scope) => scopes.includes(scope))) return;
        // A stream not ended by its token (a POST's answer) stays its own request's; one a fresher token already
        // moved on stays on that token.
        const endsAt = tokenEndsAt(exp) + stream.graceMs;
        if (stream.endsAt === Number.POSITIVE_INFINITY || endsAt < stream.endsAt) return;
        stream.endsAt = endsAt;
        // It lives on the new token now: filed under that token's key, it is cut when that key is removed, not when
        // the first token's is (a key retired after a rotation, once its tokens expired, cut every stream kept since).
        if (kid === undefined || kid === stream.kid) return;
        stream.forgetKey?.();
        stream.kid = kid;
        stream.forgetKey = byKey.add(kid, stream);
      });
    },
    closeGrant: (grantId) => byGrant.close(grantId, 'grant ended'),
    endedLately: (sessionId) => endedAt(sessionId) !== undefined,
    closeSession(sessionId) {
      const now = clock.now();
      recentEnds.delete(sessionId);
      recentEnds.set(sessionId, now);
      // Oldest first (insertion order): the expired ones, then any beyond the bound.
      for (const [ended, at] of recentEnds) {
        if (now - at < RECENT_END_MS && recentEnds.size <= MAX_RECENT_ENDS) break;
        recentEnds.delete(ended);
      }
      return bySession.close(sessionId, 'session ended');
    },
    // Every stream has a grant: the grant groups hold them all.
    closeAll: (reason) => byGrant.closeWhere(() => true, reason),
    closeSignedByOtherKeys: (liveKids) => byKey.closeWhere((kid) => !liveKids.has(kid), 'signing key removed'),
    // Every stream has a grant: the grant groups hold them all.
    closeOutOfScope: (required) =>
      byGrant.closeStreams((stream) => required.get(stream.route)?.some((scope) => !stream.scopes.includes(scope)) === true, 'scopes no longer enough'),
  };
}
