/**
 * Whether a query string or a form body names `access_token` (RFC 6750 §2.2, §2.3) as any parser the backend may use
 * reads the name: `&` and `;` as separators (some frameworks split on both), `+` as a space, `%XX` decoded, and `.`,
 * a space and `[` as `_` (PHP reads `access.token` as `access_token`). Gatehouse takes tokens from the
 * `Authorization` header only, and what else a request carries goes to the backend: a token named there would reach
 * it. Matching the literal spelling only let `?access%5Ftoken=…` and `?%61ccess_token=…` through.
 */
export function namesAccessToken(text: string): boolean {
  // The name cannot be there without these letters, spelt or escaped: almost every request is cleared by one search.
  if (!/access|%/i.test(text)) return false;
  for (const field of text.split(/[&;]/)) {
    const end = field.indexOf('=');
    const raw = (end === -1 ? field : field.slice(0, end)).replaceAll('+', ' ');
    let name = raw;
    try {
      name = decodeURIComponent(raw);
    } catch {
      // A malformed escape leaves the name as sent, as form parsers do.
    }
    if (name.trim().replace(/[. []/g, '_') === 'access_token') return true;
  }
  return false;
}
