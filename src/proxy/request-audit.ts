import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog, AuditRecord } from './audit.ts';
import { gatewayState } from './request-state.ts';
import { boundedOptional } from './client-value.ts';

/**
 * The audit record of one request, filled in as the request moves through the gateway (user once the token
 * verifies, method and tool once the body is read, bytes as they flow) and written once when the response closes —
 * whatever way it ends: success, refusal, backend failure, client disconnect (`client_closed`) or a stream still open
 * when shutdown's grace period ran out (`server_closed`).
 */
export type AuditDraft = Partial<AuditRecord> & {
  bytesIn: number;
  bytesOut: number;
  /** The other tools a batch calls besides `tool` (enforce-tool-policy.ts): each audited on a record of its own. */
  otherTools?: Set<string>;
};

export function startAudit(request: FastifyRequest, reply: FastifyReply, log: AuditLog, route: string, now: () => number): AuditDraft {
  const started = now();
  const draft: AuditDraft = { time: started, route, bytesIn: 0, bytesOut: 0 };
  gatewayState(request).audit = draft;
  // `on`, not `once`: a response closes once, and `once` would add a wrapper per request.
  reply.raw.on('close', () => {
    // No answer sent (a call cut at the end of shutdown's grace, a client gone before the backend answered): 0, not
    // the 200 a response object starts with, which read as an answer the client never had.
    const status = reply.raw.headersSent ? reply.raw.statusCode : 0;
    // A response that closed unfinished was cut by the client, unless the gateway marked its own cut (a backend
    // failure mid-stream) as an error first, or shutdown cut it.
    const cut = request.server.lifecycle.cutting ? 'server_closed' : 'client_closed';
    const outcome = draft.outcome ?? (!reply.raw.writableFinished ? cut : status >= 500 ? 'error' : status >= 400 ? 'denied' : 'allowed');
    const record: AuditRecord = {
      time: started,
      user: draft.user,
      client: draft.client,
      route,
      // The client chose the method and the tool name (and a reason may quote them): bounded (client-value.ts).
      method: boundedOptional(draft.method),
      tool: boundedOptional(draft.tool),
      reason: boundedOptional(draft.reason, 1_024),
      ...(draft.traceId === undefined ? {} : { traceId: draft.traceId }),
      requestId: request.id,
      outcome,
      status,
      durationMs: now() - started,
      bytesIn: draft.bytesIn,
      bytesOut: draft.bytesOut > 0 ? draft.bytesOut : bodyWritten(reply),
    };
    log.record(record);
    // A batch's other calls: the same request (its id, outcome, status and time), their bytes counted once, above.
    if (draft.otherTools !== undefined) {
      for (const tool of draft.otherTools) log.record({ ...record, method: 'tools/call', tool: boundedOptional(tool), bytesIn: 0, bytesOut: 0, batchCall: true });
    }
  });
  return draft;
}

/**
 * The body of an answer the gateway wrote itself (a refusal, an error): counted from its `Content-Length` once it
 * was sent whole. Only a relayed answer's bytes are counted as they flow (relay-response.ts): a refusal was audited
 * as having sent nothing.
 */
function bodyWritten(reply: FastifyReply): number {
  if (!reply.raw.writableFinished) return 0;
  // Fastify keeps the headers it writes itself, not on the raw response (written with writeHead).
  const length = Number(reply.getHeader('content-length'));
  return Number.isSafeInteger(length) && length > 0 ? length : 0;
}

export function auditDraft(request: FastifyRequest): AuditDraft {
  return request.gatewayState?.audit ?? { bytesIn: 0, bytesOut: 0 };
}
