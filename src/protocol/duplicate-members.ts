/**
 * Whether a JSON text that parsed has an object naming one member twice. `JSON.parse` keeps the last of them and says
 * nothing, so a message judged by its parse — `{"name":"secret_tool","name":"echo"}` read as `echo`, a `method`
 * given twice read as the second — reached a backend whose parser keeps the first (or refuses duplicates) as another
 * message than the one judged. RFC 8259 §4: names SHOULD be unique; I-JSON (RFC 7493 §2.3) requires it.
 *
 * One pass over the text, which is valid JSON (it parsed): strings are skipped escape-aware, and only an object's
 * member names are collected, one set per open object. A name written with escapes is decoded before it is compared
 * (`"n\u0061me"` is `name`).
 */
export function hasDuplicateMember(text: string): boolean {
  const open: Array<Set<string> | undefined> = [];
  let expectName = false;
  const length = text.length;
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (code === QUOTE) {
      let end = index + 1;
      let escaped = false;
      while (end < length) {
        const inner = text.charCodeAt(end);
        if (inner === BACKSLASH) {
          escaped = true;
          end += 2;
          continue;
        }
        if (inner === QUOTE) break;
        end++;
      }
      const names = open[open.length - 1];
      if (expectName && names !== undefined) {
        const name = escaped ? (JSON.parse(text.slice(index, end + 1)) as string) : text.slice(index + 1, end);
        if (names.has(name)) return true;
        names.add(name);
        expectName = false;
      }
      index = end;
    } else if (code === OPEN_BRACE) {
      open.push(new Set());
      expectName = true;
    } else if (code === OPEN_BRACKET) {
      open.push(undefined);
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      open.pop();
    } else if (code === COMMA) {
      expectName = open[open.length - 1] !== undefined;
    }
  }
  return false;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
