/**
 * Gatehouse's own failures that are not answers to a client: startup refusals, CLI mistakes, store and key problems.
 * Each has a stable code (as Fastify's `FST_ERR_*`), so logs, scripts and docs can name it, and the exit code the
 * CLI ends with. docs/errors.md lists them; test/server/errors-doc.test.ts keeps the two in step.
 *
 * What a client is told is a ProtocolError (protocol-error.ts); these never reach a response body.
 */
export const internalErrors = {
  GH_CONFIG_INVALID: { exitCode: 2, meaning: 'The configuration cannot be used; every problem is printed on its own line, naming the field.' },
  GH_USAGE: { exitCode: 2, meaning: 'A command-line mistake (unknown command or option, missing argument) or a refusal to start (port in use).' },
  GH_NOT_FOUND: { exitCode: 1, meaning: 'An admin command named a client, grant, user or key that does not exist.' },
  GH_CHANGED: { exitCode: 1, meaning: 'An admin decision named a version that is no longer the current one (a tool definition changed after it was shown); look again and decide on what is there now.' },
  GH_STORE_UNAVAILABLE: { exitCode: 1, meaning: 'The store (SQLite file or Redis) cannot be reached; requests get 503 while it lasts (at start, a store that cannot be opened or a damaged SQLite file is a refusal to start: exit 2, like GH_USAGE; one that opened and then failed for a reason that may pass — a lock held, Redis failing over — is a failed start, exit 1, for a supervisor to retry).' },
  GH_STORE_UNREACHABLE: { exitCode: 1, meaning: 'An admin command could not reach the store.' },
  GH_KEY_SET_INVALID: { exitCode: 2, meaning: 'The key set (file or store record) is malformed or has no usable key.' },
  GH_KEY_UPDATE_BUSY: { exitCode: 1, meaning: 'Another key rotation, prune or revocation is running; retry shortly.' },
  GH_RECORD_INVALID: { exitCode: 1, meaning: 'A stored record does not match its declared schema (corrupt, or written by something else); the namespace and the failing fields are named, never the value.' },
  GH_SECRET_CHECK_BUSY: { exitCode: 1, meaning: 'Too many slow (scrypt) client-secret checks of the same client are waiting (8 from one address, 64 in all); the token request is answered 503 with Retry-After.' },
  GH_UNSEAL_FAILED: { exitCode: 1, meaning: 'A sealed value could not be opened (tampered, or its key was pruned).' },
  GH_UPSTREAM_TIMEOUT: { exitCode: 1, meaning: 'The identity provider did not answer in time.' },
  GH_CLIENT_METADATA_FETCH: { exitCode: 1, meaning: 'A client ID metadata document could not be fetched safely (scheme, address, size, status).' },
  GH_GRAPH_REQUEST: { exitCode: 1, meaning: '`gatehouse entra setup`: a Microsoft Graph request failed or the sign-in for it did; the Graph error code and message are printed.' },
} as const satisfies Record<string, { exitCode: 1 | 2; meaning: string }>;

export type InternalErrorCode = keyof typeof internalErrors;

export class GatehouseError extends Error {
  readonly code: InternalErrorCode;
  readonly exitCode: 1 | 2;

  constructor(code: InternalErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatehouseError';
    this.code = code;
    this.exitCode = internalErrors[code].exitCode;
  }
}
