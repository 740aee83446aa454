import { ConfigError } from '../config/config-error.ts';
import { cookieSecurityProblem } from '../config/public-url.ts';
import type { GatehouseContext } from '../context/gatehouse-context.ts';

/**
 * Whether browser cookies are `Secure` (and ours `__Host-`). Always, except with `dev.insecureCookies` on an
 * http://localhost public URL — local development without TLS — which is announced loudly at start-up.
 * An http public URL without that setting is a configuration error (the same rule `config check` applies): the
 * cookies could never be set.
 */
export function cookieSecurity(ctx: GatehouseContext): boolean {
  const problem = cookieSecurityProblem(ctx.publicUrl, ctx.config.dev.insecureCookies);
  if (problem) throw new ConfigError([problem]);
  if (new URL(ctx.publicUrl).protocol === 'https:') {
    if (ctx.config.dev.insecureCookies) {
      ctx.logger.warn('dev.insecureCookies is ignored: the public URL is https, cookies stay Secure and __Host-');
    }
    return true;
  }
  ctx.logger.warn(
    '!!! INSECURE COOKIES: dev.insecureCookies is on — consent and session cookies are sent without Secure/__Host- over ' +
      `plain http at ${ctx.publicUrl}. Development only; never use this setting in production. !!!`,
  );
  return false;
}
