/**
 * An origin as a CSP source expression (`https://host[:port]`), or undefined when it cannot be one. The WHATWG URL
 * parser forbids only a few code points in a host: `;`, `,`, `*`, `'` and `"` pass, and in a
 * `Content-Security-Policy` header they would end the directive (`;`), start another policy (`,`) or read as a
 * wildcard or keyword. So an origin taken from a registered redirect URI (anyone may register one), the branding logo
 * or the IdP's URL enters a policy only when it is plain CSP3 host-source syntax: dot-separated labels of
 * `ALPHA / DIGIT / "-"` (what IDNA leaves of any domain), or a bracketed IPv6 literal, and an optional port.
 * @see CSP3 §2.3.1 (host-source grammar), RFC 9110 §5.6.1 (a comma separates header list members)
 */
const CSP_ORIGIN = /^https?:\/\/(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

export function cspOrigin(url: string): string | undefined {
  const origin = URL.parse(url)?.origin;
  return origin !== undefined && CSP_ORIGIN.test(origin) ? origin : undefined;
}
