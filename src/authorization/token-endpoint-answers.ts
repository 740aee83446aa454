import type { KoaContextWithOIDC } from 'oidc-provider';
import type { StoreUnavailableError } from '../store/store.ts';

/**
 * Answers the token endpoint's post-processing steps (refresh-retry.ts, code-exchange-retry.ts) give in place of the
 * one oidc-provider prepared, in the provider's own error format (RFC 6749 §5.2). They run after the provider's error
 * handling, so anything they threw instead would become Koa's plain-text 500.
 */

/** 503 `temporarily_unavailable` with the outage's Retry-After: the client retries the same request. */
export function answerTemporarilyUnavailable(ctx: KoaContextWithOIDC, outage: StoreUnavailableError): void {
  ctx.status = 503;
  ctx.set('retry-after', String(outage.retryAfterSeconds));
  ctx.set('cache-control', 'no-store');
  ctx.body = { error: 'temporarily_unavailable', error_description: 'The service is temporarily unavailable; retry later.' };
}

/** 400 `invalid_grant`, worded as oidc-provider words every refused grant (no detail for the caller to probe). */
export function answerInvalidGrant(ctx: KoaContextWithOIDC): void {
  ctx.remove('content-type');
  ctx.status = 400;
  ctx.set('cache-control', 'no-store');
  ctx.body = { error: 'invalid_grant', error_description: 'grant request is invalid' };
}
