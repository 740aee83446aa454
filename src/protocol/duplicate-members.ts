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
 * Whether a JSON text has an object naming one member twice. `JSON.parse` keeps the last of them and says nothing,
 * so a message judged by its parse — `{"name":"secret_tool","name":"echo"}` read as `echo`, a `method` given twice
 * read as the second — reached a backend whose parser keeps the first (or refuses duplicates) as another message
 * than the one judged. RFC 8259 §4: names SHOULD be unique; I-JSON (RFC 7493 §2.3) requires it.
 *
 * Counted, not compared: in valid JSON every member has exactly one `:` outside strings, so the text names as many
 * members as it has such colons, while its parse (`parsed`, or the text parsed here) holds one member per distinct
 * name of each object it kept. The two counts agree exactly when no object names a member twice: a duplicate drops a
 * member, and the value it replaced, with every member nested in it. This allocates nothing per member, where
 * collecting names did (a set per object, a string per name), on every MCP POST. A text that does not parse has no
 * duplicate to report (its parser refuses it). Names in other cases are another matter (foldedCollision): a
 * case-insensitive parser matches them only against the fields of a struct, so they are checked only where a
 * backend binds one.
 */
export function hasDuplicateMember(text: string, parsed: unknown = UNPARSED): boolean {
  let value = parsed;
  if (value === UNPARSED) {
    try {
      value = JSON.parse(text);
    } catch {
      return false;
    }
  }
  return membersInText(text) !== membersParsed(value);
}

const UNPARSED = Symbol('unparsed');

/** The colons outside strings of a valid JSON text: one per member of every object in it. */
function membersInText(text: string): number {
  let members = 0;
  const length = text.length;
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (code === QUOTE) {
      index++;
      while (index < length) {
        const inner = text.charCodeAt(index);
        if (inner === BACKSLASH) index += 2;
        else if (inner === QUOTE) break;
        else index++;
      }
    } else if (code === COLON) {
      members++;
    }
  }
  return members;
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

/**
 * The first member of `object` that shares its folded name with another (`{"name":…,"Name":…}`): two members to
 * JSON.parse, one field to a case-insensitive parser binding a struct (which keeps the last). For the objects a
 * backend binds to structs (a message, its `params`, its top-level `arguments`, its `_meta`), not for maps nested in
 * arguments, where `PATH` and `path` are two environment variables.
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
