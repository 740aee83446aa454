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
