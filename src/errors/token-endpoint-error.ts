import { errorCatalogue, type ErrorCode } from './protocol-error.ts';

/**
 * An error a grant handler registered on oidc-provider throws: the provider renders it as-is (it shows
 * `error`/`error_description` for errors with `expose` and uses the status in `statusCode`); anything else would become
 * an opaque `server_error`. `error_detail` is oidc-provider's private detail: logged with the request, never sent.
 */
export class TokenEndpointError extends Error {
  readonly expose = true;
  readonly error: ErrorCode;
  readonly error_description: string;
  readonly error_detail: string | undefined;
  readonly status: number;
  readonly statusCode: number;
  constructor(code: ErrorCode, description: string, options: { status?: number; detail?: string } = {}) {
    super(code);
    this.error = code;
    this.error_description = description;
    this.error_detail = options.detail;
    this.status = options.status ?? errorCatalogue[code].status;
    this.statusCode = this.status;
  }
}
