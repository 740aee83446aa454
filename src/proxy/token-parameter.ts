/**
 * Whether a query string or a form body names `access_token` (RFC 6750 §2.2, §2.3) as any parser the backend may use
 * reads the name. Gatehouse takes tokens from the `Authorization` header only, and what else a request carries goes
 * to the backend: a token named there would reach it. Matching the literal spelling only let `?access%5Ftoken=…`,
 * `?ACCESS_TOKEN=…` (ASP.NET reads names in any case) and `?access_token[]=…` (qs, Rack and PHP read an array of one)
 * through. A name is read:
 * - between `&` or `;` separators (some frameworks split on both), `+` as a space, `%XX` decoded;
 * - up to a NUL, and up to a `[` that a `]` closes (an array or map of that name);
 * - with `.`, a space and an unclosed `[` as `_` (PHP), in any case.
 * One pass over the text with `indexOf`, no array of fields: a body of a million separators costs a loop, not a
 * split and a million decodes.
 */
export function namesAccessToken(text: string): boolean {
  // The name cannot be there without these letters, spelt or escaped: almost every request is cleared by one search.
  if (!/access|%/i.test(text)) return false;
  // The next `&` and `;` at or after the field's start, each searched again only once passed: searching both from
  // every field was quadratic in a text with many of one and none of the other.
  let ampersand = -2;
  let semicolon = -2;
  let start = 0;
  while (start <= text.length) {
    if (ampersand !== -1 && ampersand < start) ampersand = text.indexOf('&', start);
    if (semicolon !== -1 && semicolon < start) semicolon = text.indexOf(';', start);
    const separator = ampersand === -1 ? semicolon : semicolon === -1 ? ampersand : Math.min(ampersand, semicolon);
    const end = separator === -1 ? text.length : separator;
    // Shorter than `access_token` as written, it cannot decode to it (decoding only shortens).
    if (end - start >= NAME_LENGTH) {
      const field = text.slice(start, end);
      const equals = field.indexOf('=');
      const name = equals === -1 ? field : field.slice(0, equals);
      if (name.length >= NAME_LENGTH && readsAsAccessToken(name)) return true;
    }
    start = end + 1;
  }
  return false;
}

const NAME_LENGTH = 'access_token'.length;

/**
 * Whether a `multipart/form-data` body has a part named `access_token` (its `Content-Disposition` `name`), read as
 * namesAccessToken reads a name. Part headers are found by their field name wherever they are, which may also match
 * text inside a part: that can only refuse more.
 */
export function multipartNamesAccessToken(text: string): boolean {
  if (!/access|%/i.test(text)) return false;
  for (const match of text.matchAll(/content-disposition:[^\r\n]*?;\s*name\s*=\s*(?:"([^"\r\n]*)"|([^;\s]*))/gi)) {
    if (readsAsAccessToken(match[1] ?? match[2] ?? '')) return true;
  }
  return false;
}

function readsAsAccessToken(raw: string): boolean {
  let name = raw.replaceAll('+', ' ');
  try {
    name = decodeURIComponent(name);
  } catch {
    // A malformed escape leaves the name as sent, as form parsers do.
  }
  const nul = name.indexOf('\0');
  if (nul !== -1) name = name.slice(0, nul);
  name = name.trim();
  const open = name.indexOf('[');
  if (open !== -1 && name.indexOf(']', open) !== -1) name = name.slice(0, open);
  return name.replace(/[. []/g, '_').toLowerCase() === 'access_token';
}
