/**
 * Whether a query string or a form body names `access_token` (RFC 6750 §2.2, §2.3) as any parser the backend may use
 * reads the name. Gatehouse takes tokens from the `Authorization` header only, and what else a request carries goes
 * to the backend: a token named there would reach it. Matching the literal spelling only let `?access%5Ftoken=…`,
 * `?ACCESS_TOKEN=…` (ASP.NET reads names in any case) and `?access_token[]=…` (qs, Rack and PHP read an array of one)
 * through. A name is read:
 * - between `&` or `;` separators (some frameworks split on both), `+` as a space, `%XX` decoded;
 * - each valid `%XX` decoded on its own, up to a NUL;
 * - with brackets as PHP, Rack 2, Rack 3 and qs read them (an array or map of that name), `.`, a space and an unclosed
 *   `[` as `_` (PHP), in any case.
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

function readsAsAccessToken(raw: string): boolean {
  // Each valid `%XX` decoded on its own, an invalid one left as written (PHP, Python): decodeURIComponent gave up on
  // the whole name at one stray `%`, and `access%5Ftoken[%]` stayed undecoded.
  // `unescape` does exactly that, natively (a callback per escape cost a second on a 4 MB form of `%41`), and also
  // reads `%uXXXX`, which classic ASP.NET's UrlDecode accepts.
  let name = unescape(raw.replaceAll('+', ' '));
  const nul = name.indexOf('\0');
  if (nul !== -1) name = name.slice(0, nul);
  name = name.trim();
  return READINGS.some((read) => read(name).toLowerCase() === 'access_token');
}

/** How backends' parsers read a parameter name with brackets, each a way `access_token` can be spelt. */
const READINGS: ReadonlyArray<(name: string) => string> = [
  // PHP: up to a `[` a `]` closes (an array), `.`, a space and an unclosed `[` read as `_`.
  (name) => {
    const open = name.indexOf('[');
    const base = open !== -1 && name.indexOf(']', open) !== -1 ? name.slice(0, open) : name;
    return base.replace(/[. []/g, '_');
  },
  // Rack 3 and qs: up to the first `[` after the first character, closed or not.
  (name) => {
    const open = name.indexOf('[', 1);
    return open === -1 ? name : name.slice(0, open);
  },
  // Rack 2: leading brackets skipped, then up to the first `[` or `]` (its own reading, `\A[\[\]]*([^\[\]]+)\]*`).
  (name) => /^[[\]]*([^[\]]*)/.exec(name)?.[1] ?? name,
];
