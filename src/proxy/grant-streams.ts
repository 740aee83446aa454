import type { ServerResponse } from 'node:http';
import type { AuditDraft } from './request-audit.ts';

/**
 * The streams open for each grant, so that ending a grant ends them too. Every request is checked against the
 * revoked grants, but a stream is one request: an SSE stream opened before a revocation (a Streamable HTTP `GET`, a
 * legacy `/sse` stream, a long tool call answered over SSE) kept carrying server messages to the client — for the
 * idle timeout, or for ever with a backend that sends keep-alives. The revocation reaches every replica within a
 * second (revoked-grants.ts); each replica then cuts its own streams of that grant here, as a network cut would, and
 * the client's reconnect meets the refusal every new request meets.
 */
export interface GrantStreams {
  /** Registers a stream carried by `response`; it is forgotten when the response closes. */
  track(grantId: string, response: ServerResponse, draft: AuditDraft): void;
  /** Cuts every open stream of the grant (audited `server_closed`, reason `grant ended`); returns how many. */
  closeGrant(grantId: string): number;
}

interface OpenStream {
  response: ServerResponse;
  draft: AuditDraft;
}

export function createGrantStreams(): GrantStreams {
  const open = new Map<string, Set<OpenStream>>();
  return {
    track(grantId, response, draft) {
      if (response.closed || response.destroyed) return;
      const stream: OpenStream = { response, draft };
      let streams = open.get(grantId);
      if (streams === undefined) open.set(grantId, (streams = new Set()));
      streams.add(stream);
      const held = streams;
      response.on('close', () => {
        held.delete(stream);
        if (held.size === 0 && open.get(grantId) === held) open.delete(grantId);
      });
    },
    closeGrant(grantId) {
      const streams = open.get(grantId);
      if (streams === undefined) return 0;
      open.delete(grantId);
      for (const { response, draft } of streams) {
        draft.outcome ??= 'server_closed';
        draft.reason ??= 'grant ended';
        // As a network cut: the backend request is aborted with it (relay-response.ts), and the client reconnects.
        response.destroy();
      }
      return streams.size;
    },
  };
}
