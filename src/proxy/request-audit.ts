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
  /** The other tools a batch calls besides `tool` (auditBatchTools, auditNamedTool): each audited on a record of its own. */
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
      // A reason is the named tool's: said so on the others (read alone, "echo denied: missing scope mcp:secret").
      const reason = record.reason === undefined ? undefined : boundedOptional(`for ${record.tool} in the same batch: ${record.reason}`, 1_024);
      for (const tool of draft.otherTools) log.record({ ...record, method: 'tools/call', tool: boundedOptional(tool), reason, bytesIn: 0, bytesOut: 0, batchCall: true });
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

/**
 * The audit names every tool a POST calls: a batch's first on the request's record, each other on a record of its own
 * (startAudit), gathered as the body is read (read-mcp-post.ts) so that a call after the one refused is named too.
 * With the first alone, `[echo, secret_tool]` was audited as a call of `echo`, and a guarded tool's calls could be
 * kept out of the audit by putting another call first.
 */
export function auditBatchTools(draft: AuditDraft, called: readonly string[]): void {
  for (const tool of called) {
    if (draft.tool === undefined) draft.tool = tool;
    else if (tool !== draft.tool && (draft.otherTools ??= new Set()).size < MAX_OTHER_TOOLS_AUDITED) draft.otherTools.add(tool);
  }
}

/**
 * The request's record names `tool` — refused, or flagged (tool pinning's `warn`) — as policy names it, its reason
 * being about that one. A batch's tool it named before goes to the other records; `tool` (and the spelling the client
 * `called` it by) is not also among them.
 */
export function auditNamedTool(draft: AuditDraft, tool: string, called = tool): void {
  const before = draft.tool;
  const others = draft.otherTools;
  if (others !== undefined) {
    others.delete(called);
    others.delete(tool);
    if (before !== undefined && before !== called && before !== tool && others.size < MAX_OTHER_TOOLS_AUDITED) others.add(before);
  }
  draft.tool = tool;
}

/**
 * Records one batch adds to the audit at most: its requests are bounded only by the body limit, and a record per
 * name would let one request write thousands. The first of them are named; its request id ties them together.
 */
const MAX_OTHER_TOOLS_AUDITED = 32;

export function auditDraft(request: FastifyRequest): AuditDraft {
  return request.gatewayState?.audit ?? { bytesIn: 0, bytesOut: 0 };
}
