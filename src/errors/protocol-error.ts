/**
 * The one error type for everything a client can be told. Handlers throw a ProtocolError; one renderer
 * (src/errors/render-error.ts, called by src/server/error-handler.ts and the few places that answer outside Fastify's
 * handler) turns it into the response: OAuth JSON, a `WWW-Authenticate` challenge, a JSON-RPC error, or the one styled
 * HTML error page. Nothing else formats error bodies, so no stack trace or token can leak through a handler.
 *
 * docs/errors.md lists every code; test/server/errors-doc.test.ts keeps the two in step.
 */

/**
 * The JSON-RPC codes Gatehouse sends on MCP routes, with the HTTP status beside them. Each says only what is true
 * of the request: -32600 only for a message that is not a valid JSON-RPC request, never -32601 (Gatehouse never
 * decides that a method is unknown; the backend does). Refusals about anything else (token, origin, size, rate,
 * backend) use the implementation-defined server error, as the MCP SDK servers do.
 * @see JSON-RPC 2.0 §5.1; MCP 2026-07-28 basic/transports (-32020 HeaderMismatch)
 */
export const jsonRpcCodes = {
  parseError: -32700,
  invalidRequest: -32600,
  /** JSON-RPC §5.1: the method's parameters are not what it takes (a `tools/call` without a string `name`). */
  invalidParams: -32602,
  /** JSON-RPC §5.1: no such method (a method the protocol revision removed, MCP 2026-07-28 `tasks/result`). */
  methodNotFound: -32601,
  internalError: -32603,
  /** JSON-RPC §5.1 implementation-defined server error. */
  serverError: -32000,
  /** An unknown or ended `Mcp-Session-Id` (HTTP 404): the MCP SDK servers' code and message. */
  sessionNotFound: -32001,
  /** MCP 2026-07-28: a mirrored `Mcp-Method`/`Mcp-Name` header disagrees with the body (HTTP 400). */
  headerMismatch: -32020,
} as const;

/**
 * OAuth 2.x / RFC 6750 / RFC 8707 error codes, plus Gatehouse's own for non-OAuth surfaces; each with its HTTP
 * status and the JSON-RPC code it is sent with on MCP routes (a thrower may name a more precise one).
 */
export const errorCatalogue = {
  invalid_request: { status: 400, jsonRpc: jsonRpcCodes.invalidRequest, description: 'The request is missing a parameter, repeats one, or is malformed.' },
  invalid_client: { status: 401, jsonRpc: jsonRpcCodes.serverError, description: 'Client authentication failed or the client is unknown.' },
  invalid_grant: { status: 400, jsonRpc: jsonRpcCodes.serverError, description: 'The code, refresh token or assertion is invalid, expired or used.' },
  unauthorized_client: { status: 400, jsonRpc: jsonRpcCodes.serverError, description: 'The client may not use this grant type.' },
  unsupported_grant_type: { status: 400, jsonRpc: jsonRpcCodes.serverError, description: 'The grant type is not supported.' },
  invalid_scope: { status: 400, jsonRpc: jsonRpcCodes.serverError, description: 'A requested scope is unknown or not allowed.' },
  invalid_target: { status: 400, jsonRpc: jsonRpcCodes.serverError, description: 'The `resource` is not a protected resource of this gateway (RFC 8707).' },
  access_denied: { status: 403, jsonRpc: jsonRpcCodes.serverError, description: 'The user or policy denied the request.' },
  invalid_redirect_uri: { status: 400, jsonRpc: jsonRpcCodes.serverError, description: 'The redirect URI is not registered or not allowed (RFC 7591).' },
  invalid_client_metadata: { status: 400, jsonRpc: jsonRpcCodes.serverError, description: 'Registration metadata is invalid (RFC 7591).' },
  invalid_token: { status: 401, jsonRpc: jsonRpcCodes.serverError, description: 'The access token is missing, malformed, expired, revoked or for another resource.' },
  invalid_dpop_proof: { status: 401, jsonRpc: jsonRpcCodes.serverError, description: 'The DPoP proof is missing, malformed, replayed, or does not match the request, the token or its key (RFC 9449).' },
  use_dpop_nonce: { status: 401, jsonRpc: jsonRpcCodes.serverError, description: 'The DPoP proof must carry the nonce sent in the `DPoP-Nonce` header; retry with it (RFC 9449 §9).' },
  insufficient_scope: { status: 403, jsonRpc: jsonRpcCodes.serverError, description: 'The token lacks a scope this request needs; re-authorize with them.' },
  interaction_required: { status: 401, jsonRpc: jsonRpcCodes.serverError, description: 'The upstream identity provider needs the user to sign in or consent again.' },
  temporarily_unavailable: { status: 503, jsonRpc: jsonRpcCodes.serverError, description: 'A dependency (store, identity provider) is unavailable; retry later.' },
  rate_limited: { status: 429, jsonRpc: jsonRpcCodes.serverError, description: 'Too many requests; retry after the time in `Retry-After`.' },
  forbidden_origin: { status: 403, jsonRpc: jsonRpcCodes.serverError, description: 'The `Origin` header names an origin not allowed to call this route.' },
  not_found: { status: 404, jsonRpc: jsonRpcCodes.serverError, description: 'No such resource, or it belongs to someone else.' },
  payload_too_large: { status: 413, jsonRpc: jsonRpcCodes.serverError, description: 'The request body is larger than allowed.' },
  bad_gateway: { status: 502, jsonRpc: jsonRpcCodes.serverError, description: 'The backend failed or answered with something that is not valid.' },
  gateway_timeout: { status: 504, jsonRpc: jsonRpcCodes.serverError, description: 'The backend did not answer in time.' },
  server_error: { status: 500, jsonRpc: jsonRpcCodes.internalError, description: 'An unexpected error; details are in the server log, never in the response.' },
} as const satisfies Record<string, { status: number; jsonRpc: number; description: string }>;

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
  /** A more precise JSON-RPC code than the catalogue's (parse error, header mismatch, session not found). */
  jsonRpcCode?: number;
  /** Scopes a step-up needs (for `insufficient_scope`). */
  scope?: string;
  /**
   * What an operator needs to know and the client must not see (which check failed, which backend, an upstream
   * AADSTS code): logged with the request, never rendered (oidc-provider's `error_detail`).
   */
  detail?: string;
  /**
   * On the HTML page only: what to do next, where the code's general advice is wrong for this page (a console filter
   * to change, not "go back to the application"), with a link on this gateway (a path, never another origin).
   */
  nextStep?: NextStep;
  cause?: unknown;
}

/** An error page's "What to do next", with an optional link to a path of this gateway. */
export interface NextStep {
  text: string;
  link?: { path: `/${string}`; label: string };
}

export class ProtocolError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly redirectable: boolean;
  readonly headers: Record<string, string>;
  readonly scope: string | undefined;
  readonly jsonRpcCode: number;
  /** Logged, never sent (see ProtocolErrorOptions.detail). */
  readonly detail: string | undefined;
  readonly nextStep: NextStep | undefined;

  /** `description` is shown to the client: it must never contain a token, a secret or internal detail. */
  constructor(code: ErrorCode, description?: string, options: ProtocolErrorOptions = {}) {
    super(description ?? errorCatalogue[code].description, { cause: options.cause });
    this.name = 'ProtocolError';
    this.code = code;
    this.status = options.status ?? errorCatalogue[code].status;
    this.redirectable = options.redirectable ?? false;
    this.headers = options.headers ?? {};
    this.scope = options.scope;
    this.jsonRpcCode = options.jsonRpcCode ?? errorCatalogue[code].jsonRpc;
    this.detail = options.detail;
    this.nextStep = options.nextStep;
  }

  get description(): string {
    return this.message;
  }
}
