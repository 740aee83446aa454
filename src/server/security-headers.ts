import { mediaTypeOf } from '../protocol/media-type.ts';
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

/** The headers every response gets unless it set its own (its CSP and cache policy depend on its type). */
function everyResponseDefaults(hsts: boolean): ReadonlyArray<readonly [string, string]> {
  return [
    ['x-content-type-options', 'nosniff'],
    ['referrer-policy', 'no-referrer'],
    ['x-frame-options', 'DENY'],
    ...(hsts ? [['strict-transport-security', hstsValue] as const] : []),
  ];
}

/**
 * The same defaults for the responses oidc-provider writes itself (a hijacked reply skips the hook below): its
 * `form_post` page, which carries an authorization code and runs an inline script, went out without CSP or framing
 * protection. Its CSP is the pages' one with a `script-src`, which the provider extends with its inline script's
 * hash (oidc-provider's `script_src_sha`), and without `form-action`, since that page posts to the client's own
 * redirect URI.
 */
export function providerResponseHeaders(options: Pick<SecurityHeadersOptions, 'hsts'>): Readonly<Record<string, string>> {
  const csp = defaultHtmlCsp.replace("default-src 'none';", "default-src 'none'; script-src 'self';").replace(" form-action 'self';", '');
  return Object.fromEntries([...everyResponseDefaults(options.hsts), ['content-security-policy', csp]]);
}

/** Types a browser renders as a document that can run script (SVG and XML documents too, not only HTML). */
const SCRIPTABLE_TYPES = new Set(['text/html', 'application/xhtml+xml', 'image/svg+xml', 'text/xml', 'application/xml']);

/**
 * The defaults for an answer sent where the hook below does not run: Fastify answers errors raised before routing
 * (`frameworkErrors`: a URL with broken percent-encoding, an over-long path parameter) without its hooks, and a
 * browser may be shown that page. `html`: the headers of a page; `other`: of anything else.
 */
export function unhookedResponseHeaders(options: SecurityHeadersOptions): { html: Readonly<Record<string, string>>; other: Readonly<Record<string, string>> } {
  const every = Object.fromEntries(everyResponseDefaults(options.hsts));
  return {
    html: { ...every, 'content-security-policy': htmlCspWithImages(options.imageOrigins ?? []), 'cache-control': 'no-store' },
    other: { ...every, 'cache-control': 'no-store' },
  };
}

export function installSecurityHeaders(app: FastifyInstance, options: SecurityHeadersOptions): void {
  const htmlCsp = htmlCspWithImages(options.imageOrigins ?? []);
  const defaults = everyResponseDefaults(options.hsts);
  // A callback hook, not an async one: it runs on every response and never waits.
  app.addHook('onSend', (_request, reply, payload, done) => {
    const setDefault = (name: string, value: string) => {
      if (!reply.hasHeader(name)) reply.header(name, value);
    };
    for (const [name, value] of defaults) setDefault(name, value);

    // Read as a media type: a relayed backend answer may spell it `Text/HTML`, and a browser still renders it.
    const contentType = mediaTypeOf(reply.getHeader('content-type'));
    if (SCRIPTABLE_TYPES.has(contentType)) setDefault('content-security-policy', htmlCsp);
    // API answers carry tokens and per-user data: no shared or browser cache unless a route opts in.
    if (contentType === 'application/json' || contentType.endsWith('+json')) setDefault('cache-control', 'no-store');
    done(null, payload);
  });
}
