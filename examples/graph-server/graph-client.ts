import type { Logger } from 'pino';

/**
 * Microsoft Graph calls as the user. Throttling is honoured, not fought: a 429 waits for `Retry-After` (bounded) and
 * tries once more; a second 429, a 5xx or a network failure becomes a GraphError with a message a user can read. No
 * message ever contains the token or Graph's raw error body.
 * @see https://learn.microsoft.com/graph/throttling
 */
export class GraphError extends Error {
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  constructor(message: string, status: number, retryAfterSeconds?: number) {
    super(message);
    this.name = 'GraphError';
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface GraphClientOptions {
  /** e.g. `https://graph.microsoft.com` or the local demo directory API. */
  baseUrl: string;
  fetch?: typeof globalThis.fetch;
  logger: Logger;
  /** Longest `Retry-After` we wait for in-line; longer ones are reported to the caller instead. */
  maxRetryAfterMs?: number;
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export type GraphProfile = Record<string, unknown> & { id?: string; displayName?: string };

export interface GraphClient {
  getMe(accessToken: string): Promise<GraphProfile>;
}

/** @see RFC 9110 §10.2.3 — delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

export function createGraphClient(options: GraphClientOptions): GraphClient {
  const { baseUrl, logger, maxRetryAfterMs = 10_000, timeoutMs = 10_000 } = options;
  const fetch = options.fetch ?? globalThis.fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const base = baseUrl.replace(/\/+$/, '');

  async function get(path: string, accessToken: string, attempt: number): Promise<GraphProfile> {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      logger.warn({ path, reason: (error as Error).name }, 'Microsoft Graph unreachable');
      throw new GraphError('Microsoft Graph could not be reached; try again later.', 503);
    }
    if (response.ok) return (await response.json()) as GraphProfile;
    await response.body?.cancel().catch(() => undefined);
    const requestId = response.headers.get('request-id') ?? undefined;
    logger.warn({ path, status: response.status, requestId, attempt }, 'Microsoft Graph error');

    if (response.status === 429) {
      const retryAfter = parseRetryAfter(response.headers.get('retry-after'), Date.now()) ?? 1;
      if (attempt === 0 && retryAfter * 1000 <= maxRetryAfterMs) {
        await sleep(retryAfter * 1000);
        return get(path, accessToken, attempt + 1);
      }
      throw new GraphError(`Microsoft Graph is throttling requests; retry after ${retryAfter} s.`, 429, retryAfter);
    }
    if (response.status === 401) throw new GraphError('Microsoft Graph did not accept the delegated token.', 401);
    if (response.status === 403) throw new GraphError('Microsoft Graph denied access (missing permission or consent).', 403);
    if (response.status >= 500) {
      throw new GraphError(`Microsoft Graph failed (HTTP ${response.status}); try again later.`, response.status);
    }
    throw new GraphError(`Microsoft Graph rejected the request (HTTP ${response.status}).`, response.status);
  }

  return { getMe: (accessToken) => get('/v1.0/me', accessToken, 0) };
}
