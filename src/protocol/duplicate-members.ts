/**
 * A member name as a case-insensitive parser matches it: Go's `encoding/json` (which mcp-go, and many Go backends,
 * decode MCP messages with) binds `"Name"`, `"NAME"` and `"ſame"`-like spellings to a field `name`, by Unicode simple
 * case folding (`ſ` is `s`, the Kelvin sign `K` is `k`, `ẞ` is `ß`). Per character: upper then lower case, where
 * that is one character (`ß` upper-cases to `SS`, which simple folding does not do, so it stays `ß`), except the
 * Turkish dotless and dotted i, which simple folding keeps apart from `i`.
 */
export function foldedName(name: string): string {
  // Every name of JSON-RPC and MCP, and nearly every other: ASCII, where folding is lower-casing.
  if (ASCII.test(name)) return name.toLowerCase();
  let folded = '';
  for (const character of name) {
    const upper = character.toUpperCase();
    const lower = upper.length === 1 ? upper.toLowerCase() : character.toLowerCase();
    folded += character === '\u0131' || character === '\u0130' || lower.length !== 1 ? character : lower;
  }
  return folded;
}

/**
 * Whether a JSON text that parsed has an object naming one member twice. `JSON.parse` keeps the last of them and says
 * nothing, so a message judged by its parse — `{"name":"secret_tool","name":"echo"}` read as `echo`, a `method`
 * given twice read as the second — reached a backend whose parser keeps the first (or refuses duplicates) as another
 * message than the one judged. RFC 8259 §4: names SHOULD be unique; I-JSON (RFC 7493 §2.3) requires it.
 *
 * One pass over the text, which is valid JSON (it parsed): strings are skipped escape-aware, and only an object's
 * member names are collected, one set per open object. A name written with escapes is decoded before it is compared
 * (`"n\u0061me"` is `name`). Names in other cases are another matter (foldedCollision): a case-insensitive parser
 * matches them only against the fields of a struct, so they are checked only where a backend binds one.
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

// oxlint-disable-next-line no-control-regex -- the whole ASCII range, controls included
const ASCII = /^[\u0000-\u007f]*$/;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/**
 * The first member of `object` that shares its folded name with another (`{"name":…,"Name":…}`): two members to
 * JSON.parse, one field to a case-insensitive parser binding a struct (which keeps the last). For the objects a
 * backend binds to structs (a message, its `params`, its top-level `arguments`, its `_meta`), not for maps nested in
 * arguments, where `PATH` and `path` are two environment variables.
 */
export function foldedCollision(object: unknown): string | undefined {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) return undefined;
  const seen = new Set<string>();
  for (const key of Object.keys(object)) {
    const folded = foldedName(key);
    if (seen.has(folded)) return key;
    seen.add(folded);
  }
  return undefined;
}

/** Members by their folded name, for misspeltMember. */
export function memberSpellings(members: readonly string[]): ReadonlyMap<string, string> {
  return new Map(members.map((member) => [foldedName(member), member]));
}

/**
 * The first own member of `object` that a case-insensitive parser reads as one of `members` but that is not spelt as
 * it: `{"method":"ping","Method":"tools/call"}` folds to a duplicate, but without a `method` there is none, and
 * `{"result":{},"Method":"tools/call","params":…}` is a response to JSON.parse and a tools/call to Go.
 */
export function misspeltMember(object: unknown, members: ReadonlyMap<string, string>): string | undefined {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) return undefined;
  for (const key of Object.keys(object)) {
    const member = members.get(foldedName(key));
    if (member !== undefined && member !== key) return key;
  }
  return undefined;
}
