import type { ServerResponse } from 'node:http';

/**
 * Error bodies shaped like Entra's token endpoint (`error`, `error_description` starting `AADSTSnnnnn:`,
 * `error_codes`, `timestamp`, `trace_id`, `correlation_id`, optional `suberror` and `claims`), so the gateway's
 * error mapping is exercised against what it meets in production.
 */
export interface EntraErrorBody {
  error: string;
  error_description: string;
  error_codes: number[];
  timestamp: string;
  trace_id: string;
  correlation_id: string;
  suberror?: string;
  claims?: string;
}

const messages = {
  50076: 'Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.',
  65001: 'The user or administrator has not consented to use the application. Send an interactive authorization request for this user and resource.',
  50173: 'The provided grant has expired due to it being revoked, a fresh auth token is needed.',
  50013: 'Assertion failed signature validation or is not valid for this application.',
  70021: 'No matching federated identity record found for presented assertion.',
  7000215: 'Invalid client secret provided. This application does not accept client secrets.',
  28003: 'Provided value for the input parameter scope cannot be empty or is not valid for the requested audience.',
  500011: 'The resource principal was not found in the tenant.',
  65004: 'User declined to consent to access the app.',
} as const;

export type AadstsCode = keyof typeof messages;

export function entraError(error: string, code: AadstsCode, extras: { suberror?: string; claims?: string; now?: number } = {}): EntraErrorBody {
  const id = crypto.randomUUID();
  const body: EntraErrorBody = {
    error,
    error_description: `AADSTS${code}: ${messages[code]} Trace ID: ${id}`,
    error_codes: [code],
    timestamp: new Date(extras.now ?? Date.now()).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    trace_id: id,
    correlation_id: crypto.randomUUID(),
  };
  if (extras.suberror) body.suberror = extras.suberror;
  if (extras.claims) body.claims = extras.claims;
  return body;
}

export const descriptionOf = (code: AadstsCode): string => `AADSTS${code}: ${messages[code]}`;

/** For requests answered before oidc-provider sees them (the client-auth bridge, revoked refresh tokens). */
export function sendEntraError(res: ServerResponse, status: number, body: EntraErrorBody): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
