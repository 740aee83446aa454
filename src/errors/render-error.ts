import type { PageBranding } from '../web/branding.ts';
import { renderErrorPage } from './error-page.ts';
import type { ProtocolError } from './protocol-error.ts';

/**
 * THE renderer of error bodies, in the three shapes a client of Gatehouse reads. Fastify's error handler
 * (src/server/error-handler.ts), the raw-socket client-error handler, the provider's error page and the metrics
 * listener all call it; no other code writes an error body.
 *
 * @see RFC 6749 §5.2 (OAuth JSON), JSON-RPC 2.0 §5.1 (error object), docs/errors.md
 */
export type ErrorFormat = 'oauth-json' | 'jsonrpc' | 'html';

export interface RenderErrorOptions {
  format?: ErrorFormat;
  /** JSON-RPC request id, when the failing request's id is known; `null` otherwise (JSON-RPC 2.0 §5). */
  id?: string | number | null;
  /**
   * The request ids of a JSON-RPC batch the error refuses as a whole: the body is then an array of one error per
   * request (JSON-RPC 2.0 §6), so each caller matches its answer instead of waiting for its timeout.
   */
  batchIds?: ReadonlyArray<string | number> | undefined;
  /** Shown on the HTML page, so a user can quote it to an operator. */
  requestId?: string;
  /** The operator's branding on the HTML page. */
  branding?: PageBranding | undefined;
}

export function renderErrorBody(error: ProtocolError, options: RenderErrorOptions = {}): { contentType: string; body: string } {
  switch (options.format ?? 'oauth-json') {
    case 'jsonrpc': {
      const answer = (id: string | number | null) => ({ jsonrpc: '2.0', id, error: { code: error.jsonRpcCode, message: error.description } });
      const batch = options.batchIds;
      return {
        contentType: 'application/json; charset=utf-8',
        body: JSON.stringify(batch !== undefined && batch.length > 0 ? batch.map(answer) : answer(options.id ?? null)),
      };
    }
    case 'html':
      return {
        contentType: 'text/html; charset=utf-8',
        body: renderErrorPage({ code: error.code, description: error.description, requestId: options.requestId, branding: options.branding, nextStep: error.nextStep }),
      };
    case 'oauth-json':
      return {
        contentType: 'application/json; charset=utf-8',
        body: JSON.stringify({ error: error.code, error_description: error.description }),
      };
  }
}
