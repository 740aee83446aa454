/**
 * The one error type for everything a client can be told. Handlers throw a ProtocolError; one place
 * (src/server/error-handler.ts) turns it into the response: OAuth JSON, a `WWW-Authenticate` challenge, a JSON-RPC
 * error, or an HTML page. Nothing else formats error bodies, so no stack trace or token can leak through a handler.
 *
 * docs/errors.md lists every code; test/server/errors-doc.test.ts keeps the two in step.
 */

/** OAuth 2.x / RFC 6750 / RFC 8707 error codes, plus Gatehouse's own for non-OAuth surfaces. */
export const errorCatalogue = {
  invalid_request: { status: 400, description: 'The request is missing a parameter, repeats one, or is malformed.' },
  invalid_client: { status: 401, description: 'Client authentication failed or the client is unknown.' },
  invalid_grant: { status: 400, description: 'The code, refresh token or assertion is invalid, expired or used.' },
  unauthorized_client: { status: 400, description: 'The client may not use this grant type.' },
  unsupported_grant_type: { status: 400, description: 'The grant type is not supported.' },
  invalid_scope: { status: 400, description: 'A requested scope is unknown or not allowed.' },
  invalid_target: { status: 400, description: 'The `resource` is not a protected resource of this gateway (RFC 8707).' },
  access_denied: { status: 403, description: 'The user or policy denied the request.' },
  invalid_redirect_uri: { status: 400, description: 'The redirect URI is not registered or not allowed (RFC 7591).' },
  invalid_client_metadata: { status: 400, description: 'Registration metadata is invalid (RFC 7591).' },
  invalid_token: { status: 401, description: 'The access token is missing, malformed, expired, revoked or for another resource.' },
  insufficient_scope: { status: 403, description: 'The token lacks a scope this request needs; re-authorize with them.' },
  interaction_required: { status: 401, description: 'The upstream identity provider needs the user to sign in or consent again.' },
  temporarily_unavailable: { status: 503, description: 'A dependency (store, identity provider) is unavailable; retry later.' },
  rate_limited: { status: 429, description: 'Too many requests; retry after the time in `Retry-After`.' },
  forbidden_origin: { status: 403, description: 'The `Origin` header names an origin not allowed to call this route.' },
  not_found: { status: 404, description: 'No such resource, or it belongs to someone else.' },
  payload_too_large: { status: 413, description: 'The request body is larger than allowed.' },
  bad_gateway: { status: 502, description: 'The backend failed or answered with something that is not valid.' },
  gateway_timeout: { status: 504, description: 'The backend did not answer in time.' },
  server_error: { status: 500, description: 'An unexpected error; details are in the server log, never in the response.' },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export interface ProtocolErrorOptions {
  /** Override the catalogue's HTTP status (e.g. `invalid_client` on the authorization endpoint is shown, not 401). */
  status?: number;
  /**
   * True only once the client and its redirect URI have been validated: then the error may be sent back to the
   * client by redirect. Anything else is rendered as a page, so an attacker cannot use us as an open redirector.
   */
  redirectable?: boolean;
  /** Extra response headers, e.g. `WWW-Authenticate` or `Retry-After`. */
  headers?: Record<string, string>;
  /** Scopes a step-up needs (for `insufficient_scope`). */
  scope?: string;
  cause?: unknown;
}

export class ProtocolError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly redirectable: boolean;
  readonly headers: Record<string, string>;
  readonly scope: string | undefined;

  /** `description` is shown to the client: it must never contain a token, a secret or internal detail. */
  constructor(code: ErrorCode, description?: string, options: ProtocolErrorOptions = {}) {
    super(description ?? errorCatalogue[code].description, { cause: options.cause });
    this.name = 'ProtocolError';
    this.code = code;
    this.status = options.status ?? errorCatalogue[code].status;
    this.redirectable = options.redirectable ?? false;
    this.headers = options.headers ?? {};
    this.scope = options.scope;
  }

  get description(): string {
    return this.message;
  }
}
