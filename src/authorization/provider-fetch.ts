import Provider from 'oidc-provider';
import type { Logger } from 'pino';
import { ClientMetadataFetchError, type GuardedFetch } from './client-metadata-fetch.ts';

/**
 * What oidc-provider fetches for a client (its Client ID Metadata Document, a `jwks_uri`) goes through the guarded
 * fetch, with two things the provider does not do:
 *
 * - **One fetch per URL per request.** A document that fails to load makes `/authorize` look the client up a second
 *   time (its error handler tries again to find a redirect URI to answer), so every failing, slow or hostile URL was
 *   fetched twice and held the request for twice the time limit. The second lookup gets the first one's answer.
 * - **A reason in the log.** The client is told only that its document could not be used; the operator sees why
 *   (the guard's reason, or the status), with the host, never the body.
 *
 * The provider's own time limit (a fixed 2.5 s signal on every fetch) is not passed on: the guard's
 * `clientMetadataDocuments.timeoutMs` is the limit an operator set, and the shorter of the two always won.
 */
export function providerFetch(fetch: GuardedFetch, logger: Logger): GuardedFetch {
  const answered = new WeakMap<object, Map<string, { response: Response } | { error: unknown }>>();
  return async (input, init = {}) => {
    const url = String(input);
    const ctx = Provider.ctx as object | undefined;
    const earlier = ctx === undefined ? undefined : answered.get(ctx)?.get(url);
    if (earlier !== undefined) {
      if ('error' in earlier) throw earlier.error;
      return earlier.response.clone();
    }
    const remember = (outcome: { response: Response } | { error: unknown }) => {
      if (ctx === undefined) return;
      const byUrl = answered.get(ctx) ?? new Map<string, { response: Response } | { error: unknown }>();
      byUrl.set(url, outcome);
      answered.set(ctx, byUrl);
    };
    const host = URL.parse(url)?.host;
    try {
      const response = await fetch(input, init.headers === undefined ? {} : { headers: init.headers });
      if (!response.ok) logger.info({ host, status: response.status }, 'client metadata fetch answered with an error status');
      remember({ response: response.clone() });
      return response;
    } catch (error) {
      const reason = error instanceof ClientMetadataFetchError ? error.reason : 'network';
      logger.info({ host, reason, detail: error instanceof Error ? error.message : undefined }, 'client metadata fetch failed');
      remember({ error });
      throw error;
    }
  };
}
