import type { ServerResponse } from 'node:http';
import type { AuditDraft } from './request-audit.ts';

/**
 * The streams open on this replica, by grant and by MCP session, so that ending either ends its streams too. Every
 * request is checked, but a stream is one request: an SSE stream opened before the end (a Streamable HTTP `GET`, a
 * legacy `/sse` stream, a long tool call answered over SSE) kept carrying server messages to the client — for the
 * idle timeout, or for ever with a backend that sends keep-alives.
 * - A grant's end reaches every replica within a second (src/grants/revoked-grants.ts); each replica then cuts its
 *   own streams of that grant here, as a network cut would, and the client's reconnect meets the refusal every new
 *   request meets.
 * - A session's end (a successful `DELETE`) reaches every replica through session-bindings.ts; a backend that keeps
 *   the session's streams open after its `DELETE` no longer keeps them open through the gateway, whichever replica
 *   carries them.
 * - A replica that can no longer learn of grant ends (its revocation list stale past
 *   `authorization.revocationMaxStalenessSeconds`, the store out of reach) cuts them all, as it refuses new requests
 *   then: a stream of a grant ended meanwhile kept flowing for the whole outage.
 */
/** Why a stream is cut or not started: the `reason` of its audit record. */
export type StreamCutReason = 'grant ended' | 'revocations cannot be checked' | 'signing key removed' | 'scopes no longer enough';

/** What a stream was admitted with. */
export interface StreamCaller {
  grantId: string;
  /** The Streamable HTTP session it belongs to, if any. */
  sessionId?: string | undefined;
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
  /** Cuts every open stream of the session (audited `server_closed`, reason `session ended`); returns how many. */
  closeSession(sessionId: string): number;
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
}

interface OpenStream {
  response: ServerResponse;
  draft: AuditDraft;
  route: string;
  scopes: readonly string[];
}

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

/**
 * `cutNow` says why a stream of `caller` must not start (its grant ended, the revocation list stale, its key revoked,
 * its route's required scopes raised beyond its token's by a reload), or nothing. A
 * stream is tracked once its backend answered, after the request's own check: an end or a stale list in between
 * (a backend slow to send its headers) found nothing to cut, and the stream then flowed on. The transports ask
 * `refusal` just before tracking and answer the request as its own check would have; `track` asks again, so a stream
 * no transport asked about is still cut rather than carried.
 */
export function createOpenStreams(cutNow: (caller: StreamCaller) => StreamCutReason | undefined = () => undefined): OpenStreams {
  const byGrant = new StreamGroups();
  const bySession = new StreamGroups();
  const byKey = new StreamGroups();
  return {
    refusal: cutNow,
    track(response, draft, caller) {
      const { grantId, sessionId, kid, route, scopes } = caller;
      if (response.closed || response.destroyed) return;
      const reason = cutNow(caller);
      if (reason !== undefined) {
        draft.outcome ??= 'server_closed';
        draft.reason ??= reason;
        response.destroy();
        return;
      }
      const stream: OpenStream = { response, draft, route, scopes };
      const forgetGrant = byGrant.add(grantId, stream);
      const forgetSession = sessionId === undefined ? undefined : bySession.add(sessionId, stream);
      const forgetKey = kid === undefined ? undefined : byKey.add(kid, stream);
      response.on('close', () => {
        forgetGrant();
        forgetSession?.();
        forgetKey?.();
      });
    },
    closeGrant: (grantId) => byGrant.close(grantId, 'grant ended'),
    closeSession: (sessionId) => bySession.close(sessionId, 'session ended'),
    // Every stream has a grant: the grant groups hold them all.
    closeAll: (reason) => byGrant.closeWhere(() => true, reason),
    closeSignedByOtherKeys: (liveKids) => byKey.closeWhere((kid) => !liveKids.has(kid), 'signing key removed'),
    // Every stream has a grant: the grant groups hold them all.
    closeOutOfScope: (required) =>
      byGrant.closeStreams((stream) => required.get(stream.route)?.some((scope) => !stream.scopes.includes(scope)) === true, 'scopes no longer enough'),
  };
}
