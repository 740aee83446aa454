import { withoutJwts } from '../server/logger.ts';

/**
 * The most of a client's value (a tool name, a JSON-RPC method, a session id, a header) that a record of the request
 * keeps: its audit record, its index in the store, its trace span. A POST body may be megabytes, and a record is
 * written for every request and kept for the audit retention: one caller's 3-million-character tool name became 9 MB
 * of Redis per request, in a record, a never-expiring index set named after it and the audit file. MCP tool names are
 * at most 128 characters (2025-11-25, tools §Tool names); beyond the bound a value is cut and marked with `…`, so a
 * record still says what was asked while nobody can make it large.
 */
export const MAX_RECORDED_VALUE_LENGTH = 256;

/**
 * A client's value as a record keeps it: a JWT inside it cut out first — a client that sent its token as a tool name,
 * a method or a session id had it written into the audit trail and the trace (whole when under the bound), where the
 * log line of the same request redacted it — then bounded.
 */
export function boundedValue(given: string, max = MAX_RECORDED_VALUE_LENGTH): string {
  const value = withoutJwts(given);
  if (value.length <= max) return value;
  let end = max - 1;
  // Never half a surrogate pair: the cut value stays valid UTF-16 (and its JSON valid UTF-8).
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${value.slice(0, end)}…`;
}

/** As `boundedValue`, for the optional fields of a record. */
export function boundedOptional(value: string | undefined, max = MAX_RECORDED_VALUE_LENGTH): string | undefined {
  return value === undefined ? undefined : boundedValue(value, max);
}
