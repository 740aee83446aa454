import { z } from 'zod';
import { defineRecord } from '../store/define-record.ts';

/**
 * One record per MCP request, one per RFC 8693 exchange a backend makes at `/token` (method `token-exchange …`), and one
 * per token asked for on standing credentials (method `client_credentials`, `jwt-bearer id-jag|workload`, see
 * src/authorization/grants/issuance-audit.ts), and one per grant ended (method `grant/end`), written by the gateway (src/proxy/audit.ts), read by the admin CLI and console (store namespace `audit`, indexed by user and tool) and for a SIEM
 * (JSON lines on stdout or a file). Records never contain tool arguments, results or tokens: an audit trail that
 * stores secrets becomes the thing an attacker wants to read.
 */
export type AuditRecord = z.infer<typeof auditRecord.schema>;

/**
 * How a request ended. `client_closed`: the client went away before its response was complete (a closed tab, a
 * cancelled stream) — a normal end for a stream, not a failure of the gateway or the backend, so never shown as one.
 */
export const AUDIT_OUTCOMES = ['allowed', 'denied', 'error', 'client_closed', 'server_closed'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/**
 * The `reason` of a request refused because it carried no access token at all: every MCP client's first request,
 * which learns from the 401's challenge where to sign in (MCP authorization, "Authorization Server Discovery"). Told
 * apart from `invalid_token` (a token sent and refused), and left out of the console's denied figures, which it filled
 * with one "denial" per client connection.
 */
export const NO_TOKEN_REASON = 'no token';

/** The `method` of the record of a grant's end (src/authorization/grant-end-audit.ts); its `reason` says why. */
export const GRANT_END_METHOD = 'grant/end';

export const auditRecord = defineRecord({
  namespace: 'audit',
  owner: 'src/proxy/audit.ts',
  key: '`<epoch ms, 15 digits>-<replica id>-<sequence, 9 digits>` (sorts by time)',
  schema: z.object({
    /** Epoch ms when the request arrived. */
    time: z.number(),
    user: z.string().optional(),
    client: z.string().optional(),
    route: z.string(),
    method: z.string().optional(),
    tool: z.string().optional(),
    /** Why the gateway refused or flagged the request (a policy's reason, a changed tool definition); never arguments. */
    reason: z.string().optional(),
    /**
     * Another tool called by the JSON-RPC batch whose request has this record's `requestId` (its first tool is on that
     * request's own record): counted with the tool, not as a request of its own (src/admin/audit-summary.ts).
     */
    batchCall: z.literal(true).optional(),
    /** The OpenTelemetry trace id (32 hex digits) of the request's span, when tracing is on: audit → trace in one step. */
    traceId: z.string().optional(),
    /** The request id (`X-Request-Id` of the response, `reqId` of the log line): audit → log in one step. */
    requestId: z.string().optional(),
    outcome: z.enum(AUDIT_OUTCOMES),
    /** The HTTP status answered; 0 when no answer was sent (the request was cut, by the client or at shutdown, first). */
    status: z.number(),
    durationMs: z.number(),
    bytesIn: z.number(),
    bytesOut: z.number(),
  }),
  ttl: '`audit.retentionDays` (default 30 days)',
  indexes: ['user', 'tool'],
  singleUse: false,
  secrets: 'none: never tool arguments, results or tokens',
  description:
    'One record per MCP request, one per RFC 8693 token exchange a backend makes at `/token` (method `token-exchange <downstream>`, route the one its subject token was forwarded on, `/token` when refused before that is known), and one per token asked for on standing credentials (method `client_credentials`, `jwt-bearer id-jag` or `jwt-bearer workload`, route the MCP server the token is for, `/token` when refused before that is known), and one per grant ended (method `grant/end`, `reason` the GrantEndReason, route the MCP server the grant was for; src/authorization/grant-end-audit.ts), written in batches (`setMany`) whatever `audit.output` says (it adds stdout or a file); queried by the admin CLI and console (src/admin/audit-query.ts) by time range, `user` or `tool`.',
});

/** The namespace, for tests that read the store directly. */
export const AUDIT_NAMESPACE = auditRecord.namespace;
