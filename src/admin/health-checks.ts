import type { ReadinessCheck } from '../server/health.ts';
import type { UpstreamClient } from '../upstream/types.ts';

/**
 * `/readyz` check for upstream discovery, for `buildServer(ctx, { readinessChecks: { upstream: … } })`. Without the
 * IdP's discovery document no one can sign in or refresh, so a replica that cannot reach it should not take traffic.
 * The health module bounds it in time; the upstream client caches discovery, so this is cheap while healthy.
 */
export function upstreamReadinessCheck(upstream: UpstreamClient): ReadinessCheck {
  return () => upstream.checkHealth();
}

/** Resolves 'ok' or 'unavailable' within `timeoutMs`, never throws: for the console's overview. */
export async function probe(check: () => Promise<void>, timeoutMs: number): Promise<'ok' | 'unavailable'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'unavailable'>((resolve) => {
    timer = setTimeout(() => resolve('unavailable'), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([check().then(() => 'ok' as const), timeout]);
  } catch {
    return 'unavailable';
  } finally {
    clearTimeout(timer);
  }
}
