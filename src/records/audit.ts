/**
 * One record per MCP request, written by the gateway (src/proxy/audit.ts), read by the admin CLI and console (store namespace `audit`, indexed by user and tool) and for a SIEM
 * (JSON lines on stdout or a file). Records never contain tool arguments, results or tokens: an audit trail that
 * stores secrets becomes the thing an attacker wants to read.
 */
export interface AuditRecord {
  /** Epoch ms when the request arrived. */
  time: number;
  user?: string;
  client?: string;
  route: string;
  method?: string;
  tool?: string;
  outcome: AuditOutcome;
  status: number;
  durationMs: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * How a request ended. `client_closed`: the client went away before its response was complete (a closed tab, a
 * cancelled stream) — a normal end for a stream, not a failure of the gateway or the backend, so never shown as one.
 */
export const AUDIT_OUTCOMES = ['allowed', 'denied', 'error', 'client_closed', 'server_closed'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export const AUDIT_NAMESPACE = 'audit';
