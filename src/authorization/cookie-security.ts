import type { GatehouseContext } from '../context/gatehouse-context.ts';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Whether browser cookies are `Secure` (and ours `__Host-`). Always, except with `dev.insecureCookies` on an
 * http://localhost public URL — local development without TLS — which is announced loudly at start-up.
 * An http public URL without that setting is a configuration error: the cookies could never be set.
 */
export function cookieSecurity(ctx: GatehouseContext): boolean {
  const url = new URL(ctx.publicUrl);
  if (url.protocol === 'https:') {
    if (ctx.config.dev.insecureCookies) {
      ctx.logger.warn('dev.insecureCookies is ignored: the public URL is https, cookies stay Secure and __Host-');
    }
    return true;
  }
  if (!ctx.config.dev.insecureCookies || !LOOPBACK_HOSTS.has(url.hostname)) {
    throw new Error(
      `The public URL ${ctx.publicUrl} is not https. Browser cookies must be Secure; for local development on ` +
        'http://localhost set dev.insecureCookies: true.',
    );
  }
  ctx.logger.warn(
    '!!! INSECURE COOKIES: dev.insecureCookies is on — consent and session cookies are sent without Secure/__Host- over ' +
      `plain http at ${ctx.publicUrl}. Development only; never use this setting in production. !!!`,
  );
  return false;
}
