import { GatehouseError } from '../errors/internal-errors.ts';
/**
 * Bounds a call to the identity provider. The UpstreamClient has its own HTTP timeout; this one also covers
 * discovery, assertion minting and anything else it does first, so a hung IdP can never hold a broker lock (and every
 * tool call queued behind it) for longer than the configured time.
 */
export class UpstreamTimeoutError extends GatehouseError {
  override readonly name = 'TimeoutError';
  constructor(what: string, ms: number) {
    super('GH_UPSTREAM_TIMEOUT', `${what} took longer than ${ms} ms`);
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UpstreamTimeoutError(what, ms)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
