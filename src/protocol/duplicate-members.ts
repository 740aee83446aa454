/**
 * A member name as a case-insensitive parser matches it: Go's `encoding/json` (which mcp-go, and many Go backends,
 * decode MCP messages with) binds `"Name"`, `"NAME"` and `"ſame"`-like spellings to a field `name`, by Unicode simple
 * case folding (`ſ` is `s`, the Kelvin sign `K` is `k`, `ẞ` is `ß`). Per character: upper then lower case, where
 * that is one character (`ß` upper-cases to `SS`, which simple folding does not do, so it stays `ß`), except the
 * Turkish dotless and dotted i, which simple folding keeps apart from `i`.
 */
export function foldedName(name: string): string {
  // Most names are lower-case ASCII already: nothing to fold, no copy.
  if (!FOLDABLE.test(name)) return name;
  // Every name of JSON-RPC and MCP, and nearly every other: ASCII, where folding is lower-casing.
  if (ASCII.test(name)) return name.toLowerCase();
  let folded = '';
  for (const character of name) {
    const upper = character.toUpperCase();
    const lower = isOneCharacter(upper) ? upper.toLowerCase() : character.toLowerCase();
    folded += character === '\u0131' || character === '\u0130' || !isOneCharacter(lower) ? character : lower;
  }
  return folded;
}

/** One code point: a letter beyond the Basic Multilingual Plane (Deseret `𐐀`) is two UTF-16 units, and one character. */
const isOneCharacter = (text: string): boolean => text.length === 1 || (text.length === 2 && text.codePointAt(0)! > 0xffff);

/**
 * What keeps a JSON text from being read, by the gateway's parse and by any parser behind it, as one message:
 *
 * - `duplicate`: an object names one member twice. `JSON.parse` keeps the last of them and says nothing, so a
 *   message judged by its parse — `{"name":"secret_tool","name":"echo"}` read as `echo`, a `method` given twice read
 *   as the second — reached a backend whose parser keeps the first (or refuses duplicates) as another message than
 *   the one judged. RFC 8259 §4: names SHOULD be unique; I-JSON (RFC 7493 §2.3) requires it.
 * - `misread`: the parse holds another member name than the text wrote. V8's `JSON.parse` (as shipped in Node 24)
 *   can return a name written with escapes as its raw characters cut to the decoded length (`"nam\u0065"` as
 *   `nam\`) once an earlier text in the process named a member `nam\`: `{"name":"echo","nam\u0065":"secret_tool"}`
 *   then parsed as two distinct members, and the backend read `secret_tool`. Names written without escapes are read
 *   as written.
 *
 * Without an escaped name, counted, not compared: in valid JSON every member has exactly one `:` outside strings, so
 * the text names as many members as it has such colons, while its parse holds one member per distinct name of each
 * object it kept; the two agree exactly when no object names a member twice (a duplicate drops a member, and the
 * value it replaced with every member nested in it). That allocates nothing per member, on every MCP POST. With an
 * escaped name, each name is decoded on its own (a string's parse, not an object's) and looked for in the object the
 * parse made of that place in the text. A text that does not parse has nothing to report (its parser refuses it).
 * Names in other cases are another matter (foldedCollision): a case-insensitive parser matches them only against
 * the fields of a struct, so they are checked only where a backend binds one.
 */
export function memberNamesProblem(text: string, parsed: unknown = UNPARSED): 'duplicate' | 'misread' | undefined {
  let value = parsed;
  if (value === UNPARSED) {
    try {
      value = JSON.parse(text);
    } catch {
      return undefined;
    }
  }
  const counted = membersInText(text);
  if (counted === ESCAPED_NAME) return namesAsWritten(text, value);
  return counted === membersParsed(value) ? undefined : 'duplicate';
}

const UNPARSED = Symbol('unparsed');

/**
 * Whether a member name of a valid JSON text is written with an escape (`"us\u0065"`). For a text another parser
 * reads after this process's own check (a registration, which oidc-provider parses again): V8's misreading depends on
 * what the process parsed before, so a second parse may misread what the checked one read right.
 */
export function hasEscapedMemberName(text: string): boolean {
  return membersInText(text) === ESCAPED_NAME;
}

/** membersInText's answer for a text with a member name written with escapes. */
const ESCAPED_NAME = -1;

/** The colons outside strings of a valid JSON text (one per member of every object in it), or ESCAPED_NAME. */
function membersInText(text: string): number {
  let members = 0;
  // Whether the last string had an escape: a colon after it makes that string a member name.
  let escaped = false;
  const length = text.length;
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (code === QUOTE) {
      const end = closingQuote(text, index);
      escaped = end < 0;
      index = end < 0 ? ~end : end;
    } else if (code === COLON) {
      if (escaped) return ESCAPED_NAME;
      members++;
    }
  }
  return members;
}

type OpenValue = { object: Record<string, unknown> | undefined; names: Set<string>; name: string | undefined } | { array: unknown[] | undefined; index: number };

/**
 * The text walked beside its parse: each name decoded on its own and found in the object the parse made of that
 * place, each object or array opened where the parse has one. With UNPARSED, only the duplicates among the decoded
 * names. A loop with a list of what is open, not a recursion (a text nested a hundred thousand deep parses).
 */
function namesAsWritten(text: string, parsed: unknown): 'duplicate' | 'misread' | undefined {
  const checked = parsed !== UNPARSED;
  const open: OpenValue[] = [];
  let expectName = false;
  const valueHere = (): unknown => {
    const inside = open[open.length - 1];
    if (inside === undefined) return parsed;
    if ('array' in inside) return inside.array?.[inside.index];
    return inside.name === undefined ? undefined : inside.object?.[inside.name];
  };
  // Where the text and its parse part ways: a duplicate further on (an object nested in a member's first value
  // meets, in the parse, the last value) or a misread name. Both refuse the text; the reason says which.
  const parted = () => (namesAsWritten(text, UNPARSED) === 'duplicate' ? 'duplicate' : 'misread');
  const length = text.length;
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (code === QUOTE) {
      const scanned = closingQuote(text, index);
      const end = scanned < 0 ? ~scanned : scanned;
      const inside = open[open.length - 1];
      if (expectName && inside !== undefined && 'object' in inside) {
        const name = scanned < 0 ? (JSON.parse(text.slice(index, end + 1)) as string) : text.slice(index + 1, end);
        if (inside.names.has(name)) return 'duplicate';
        inside.names.add(name);
        if (checked && !Object.hasOwn(inside.object!, name)) return parted();
        inside.name = name;
        expectName = false;
      }
      index = end;
    } else if (code === OPEN_BRACE) {
      const value = checked ? valueHere() : undefined;
      if (checked && (typeof value !== 'object' || value === null || Array.isArray(value))) return parted();
      open.push({ object: value as Record<string, unknown> | undefined, names: new Set(), name: undefined });
      expectName = true;
    } else if (code === OPEN_BRACKET) {
      const value = checked ? valueHere() : undefined;
      if (checked && !Array.isArray(value)) return parted();
      open.push({ array: value as unknown[] | undefined, index: 0 });
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      open.pop();
    } else if (code === COMMA) {
      const inside = open[open.length - 1];
      if (inside !== undefined && 'array' in inside) inside.index++;
      else expectName = true;
    }
  }
  return undefined;
}

/**
 * The index of the quote that closes the string opened at `open` (escape-aware), as its bitwise complement (`~`, a
 * negative number) when the string has an escape: one pass tells both, with no allocation.
 */
function closingQuote(text: string, open: number): number {
  const length = text.length;
  let escaped = false;
  let index = open + 1;
  while (index < length) {
    const code = text.charCodeAt(index);
    if (code === BACKSLASH) {
      escaped = true;
      index += 2;
    } else if (code === QUOTE) break;
    else index++;
  }
  return escaped ? ~index : index;
}

/**
 * The own members of every object in a parsed JSON value. A loop over a list of values still to count, not a
 * recursion: a body nested a hundred thousand deep parses, and would overflow the stack here.
 */
function membersParsed(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  let members = 0;
  const pending: object[] = [value];
  while (pending.length > 0) {
    const next = pending.pop() as Record<string, unknown> | unknown[];
    if (Array.isArray(next)) {
      for (const item of next) if (typeof item === 'object' && item !== null) pending.push(item);
      continue;
    }
    for (const key in next) {
      // Own members only: an enumerable member someone added to Object.prototype is in no parsed object.
      if (!Object.hasOwn(next, key)) continue;
      members++;
      const item = next[key];
      if (typeof item === 'object' && item !== null) pending.push(item);
    }
  }
  return members;
}

/** A character simple case folding may change: an ASCII capital, or anything beyond ASCII. */
const FOLDABLE = /[A-Z\u0080-\uffff]/;

// oxlint-disable-next-line no-control-regex -- the whole ASCII range, controls included
const ASCII = /^[\u0000-\u007f]*$/;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/**
 * The first member of `object` that shares its folded name with another (`{"name":…,"Name":…}`): two members to
 * JSON.parse, one field to a case-insensitive parser binding a struct (which keeps the last). For the objects a
 * backend binds to structs (a message, its `params`, their `_meta`) and the arguments a tool policy reads
 * (argument-policy.ts), not for maps elsewhere in arguments, where `PATH` and `path` are two environment variables.
 */
export function foldedCollision(object: unknown): string | undefined {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) return undefined;
  // Names with nothing to fold are their own folded names, and an object's names are distinct: no set unless a name
  // folds (nearly every message).
  let folds = false;
  for (const key in object) {
    if (Object.hasOwn(object, key) && FOLDABLE.test(key)) {
      folds = true;
      break;
    }
  }
  if (!folds) return undefined;
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
