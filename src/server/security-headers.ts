import type { FastifyInstance } from 'fastify';

/**
 * Default security headers on every response. A route that needs something else (the consent page's CSP with a
 * nonce, a cacheable metadata document) sets its own header and keeps it: defaults only fill what is missing.
 *
 * Written as one hook rather than @fastify/helmet because the defaults differ on purpose: helmet's CSP adds
 * `upgrade-insecure-requests` (breaks the http://localhost demo) and applies to JSON too, and HSTS must depend on
 * the public URL, not the request (behind a TLS-terminating proxy the request itself is plain http).
 */

export interface SecurityHeadersOptions {
  /** Send HSTS: true when the public URL is https. */
  hsts: boolean;
  /** Origins HTML pages may load images from besides our own (the configured branding logo's). */
  imageOrigins?: readonly string[];
}

/** For HTML: nothing from elsewhere, no framing (clickjacking on consent), forms post only back to us. */
export const defaultHtmlCsp =
  "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The default HTML CSP, letting forms (and the redirects after them) reach these origins too. */
export function htmlCspWithFormTargets(origins: readonly string[]): string {
  return defaultHtmlCsp.replace("form-action 'self'", ["form-action 'self'", ...origins].join(' '));
}

const hstsValue = 'max-age=31536000; includeSubDomains';

/** The default HTML CSP, letting images load from these origins too (a configured logo). */
export function htmlCspWithImages(origins: readonly string[]): string {
  return defaultHtmlCsp.replace("img-src 'self' data:", ["img-src 'self' data:", ...origins].join(' '));
}

/**
 * The same defaults for the responses oidc-provider writes itself (a hijacked reply skips the hook below): its
 * `form_post` page, which carries an authorization code and runs an inline script, went out without CSP or framing
 * protection. The provider adds its inline script's hash to a `script-src` it finds (oidc-provider's
 * `script_src_sha`); `form-action` stays open, since that page posts to the client's own redirect URI.
 */
export function providerResponseHeaders(options: Pick<SecurityHeadersOptions, 'hsts'>): Readonly<Record<string, string>> {
  return {
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    ...(options.hsts ? { 'strict-transport-security': hstsValue } : {}),
  };
}

export function installSecurityHeaders(app: FastifyInstance, options: SecurityHeadersOptions): void {
  const htmlCsp = htmlCspWithImages(options.imageOrigins ?? []);
  // A callback hook, not an async one: it runs on every response and never waits.
  app.addHook('onSend', (_request, reply, payload, done) => {
    const setDefault = (name: string, value: string) => {
      if (!reply.hasHeader(name)) reply.header(name, value);
    };
    setDefault('x-content-type-options', 'nosniff');
    setDefault('referrer-policy', 'no-referrer');
    setDefault('x-frame-options', 'DENY');
    if (options.hsts) setDefault('strict-transport-security', hstsValue);

    const contentType = String(reply.getHeader('content-type') ?? '');
    if (contentType.startsWith('text/html')) setDefault('content-security-policy', htmlCsp);
    // API answers carry tokens and per-user data: no shared or browser cache unless a route opts in.
    if (contentType.startsWith('application/json')) setDefault('cache-control', 'no-store');
    done(null, payload);
  });
}
