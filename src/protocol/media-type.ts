/**
 * The media type of a `Content-Type` value, lowercased and without parameters (`text/event-stream`,
 * `application/x-www-form-urlencoded`); '' when there is none. Slicing the one string costs less than splitting it
 * into an array, and this runs a few times per proxied answer.
 */
export function mediaTypeOf(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value ?? '');
  const end = text.indexOf(';');
  return (end === -1 ? text : text.slice(0, end)).trim().toLowerCase();
}

/**
 * Whether a `Content-Type` value names no charset but UTF-8 (RFC 9110 §8.3.1: parameter names are case-insensitive,
 * a value may be quoted). JSON and SSE are UTF-8 by definition, and the gateway reads both so; a party that decodes by
 * a declared `charset=utf-7` reads other text from the same bytes (a second key, a line break inside a field).
 */
export function declaresOnlyUtf8(value: unknown): boolean {
  const text = typeof value === 'string' ? value : String(value ?? '');
  // What every answer carries: no parsing on the hot path.
  if (!text.includes(';')) return true;
  for (const parameter of text.split(';').slice(1)) {
    const equals = parameter.indexOf('=');
    if (equals === -1) continue;
    const name = parameter.slice(0, equals).trim().toLowerCase();
    // RFC 2231's spellings (`charset*=''utf-7`, `charset*0=utf-; charset*1=7`), which Python's e-mail parser — behind
    // httpx, the Python SDK's HTTP client — decodes: refused whole rather than decoded here too.
    if (name.startsWith('charset*')) return false;
    if (name !== 'charset') continue;
    const charset = parameter.slice(equals + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
    if (charset !== 'utf-8' && charset !== 'utf8') return false;
  }
  return true;
}
