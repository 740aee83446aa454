/**
 * A call's arguments as lenient backends read them. The gateway judges the JSON it was sent; a backend may read other
 * values from it: Pydantic's lax mode (FastMCP, the Python SDK's tools) turns `"true"`, `"yes"`, `"on"`, `"1"`, 1 into
 * `True`, `"5"` into 5 and `True` into 1 where a parameter wants them, and the Python SDK parses a string that holds
 * JSON (`"{\"recursive\": true}"`) for a parameter that is not a string. A tool policy written for the types the tool
 * declares (`args.recursive != true`, `!(1 in args.channels)`, `args.opts != {"recursive": true}`) then allowed a call
 * the backend ran as the very value it refuses — whatever the shape of the expression, lists and maps included.
 *
 * So an allowed call is judged again under such readings (argument-policy.ts): every value under a name the policy
 * reads taken as a boolean where it can be, as a number where it can be, both (strings that name a boolean as
 * booleans, numeric ones as numbers), and strings holding a JSON object or array parsed. A reading the policy refuses
 * refuses the call; one it cannot evaluate (a boolean where it compares strings: no backend reads that field so)
 * refuses nothing. Since one field read otherwise can make a whole reading fail to evaluate (a path `"1"` read as a
 * number breaks `args.path.startsWith(…)`, hiding the boolean read beside it), a reading that fails is tried again one
 * field at a time (a backend reads each field as its one type; a list's items share one). The gateway has no schema
 * to know which reading a backend takes, so it takes them all; only values with another reading cost an evaluation,
 * and the tries stop at MAX_TRIES and at MAX_TRIED_VALUES (past either, the call is refused as one it cannot judge).
 */

/** Pydantic's strings for booleans (lax mode), compared case-insensitively after trimming. */
const TRUE_WORDS = new Set(['true', 'yes', 'on', 't', 'y', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', 'f', 'n', '0']);
/** A number as Pydantic reads one from a string: optional sign, digits, optional fraction and exponent; `_` between digits. */
const NUMERIC = /^[+-]?(?:\d(?:_?\d)*)?(?:\.(?:\d(?:_?\d)*)?)?(?:[eE][+-]?\d+)?$/;

/** The longest JSON string parsed for its reading, and the most values it may hold (the arguments' own bound). */
const MAX_JSON_STRING = 64 * 1024;
const MAX_JSON_NODES = 10_000;
const MAX_JSON_DEPTH = 32;

/**
 * What the field-by-field tries after a whole reading failed may cost: tries × the values of the arguments (each try
 * evaluates the expression over all of them): a call of 10,000 values is tried twenty ways.
 */
const MAX_TRIED_VALUES = 200_000;

/**
 * And at most this many tries, whatever the arguments' size: one evaluation of an expression with nested macros costs
 * far more than its arguments' values (every pair of them), so a count bounds what a client can multiply.
 */
const MAX_TRIES = 32;

/** Every-field-but-one tries are made for calls of up to this many fields read otherwise. */
const MAX_ALL_BUT_ONE_FIELDS = 8;

type Leaf = (value: unknown) => unknown;

function asBoolean(value: unknown): unknown {
  if (typeof value === 'number') return value === 1 ? true : value === 0 ? false : value;
  if (typeof value !== 'string') return value;
  const word = value.trim().toLowerCase();
  return TRUE_WORDS.has(word) ? true : FALSE_WORDS.has(word) ? false : value;
}

function asNumber(value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value !== 'string') return value;
  const text = value.trim();
  if (text === '' || !/\d/.test(text) || !NUMERIC.test(text)) return value;
  const number = Number(text.replaceAll('_', ''));
  return Number.isFinite(number) ? number : value;
}

/** Words as booleans, numerals as numbers: the reading of a call whose parameters want both. */
function asEither(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const word = value.trim().toLowerCase();
  if (TRUE_WORDS.has(word) && word !== '1') return true;
  if (FALSE_WORDS.has(word) && word !== '0') return false;
  return asNumber(value);
}

/** Thrown while reading a JSON string the gateway cannot judge: too long, too large, too deep, or an inexact number. */
class UnjudgeableJson extends Error {}

/**
 * A string holding a JSON object or array, parsed (the Python SDK does so for parameters that are not strings), and
 * its values read by `then` too: `"{\"recursive\": \"true\"}"` is `{recursive: true}` to that backend.
 */
function asParsedJson(then: Leaf): Leaf {
  return (value) => {
    if (typeof value !== 'string') return value;
    const text = value.trim();
    if (!text.startsWith('{') && !text.startsWith('[')) return value;
    if (text.length > MAX_JSON_STRING) throw new UnjudgeableJson();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text) as unknown;
    } catch {
      return value;
    }
    let nodes = 0;
    const read = (item: unknown, depth: number): unknown => {
      if (++nodes > MAX_JSON_NODES || depth > MAX_JSON_DEPTH) throw new UnjudgeableJson();
      if (typeof item === 'number' && Math.abs(item) > Number.MAX_SAFE_INTEGER) throw new UnjudgeableJson();
      if (Array.isArray(item)) return item.map((member) => read(member, depth + 1));
      if (item !== null && typeof item === 'object') {
        const copy: Record<string, unknown> = {};
        for (const [key, member] of Object.entries(item)) {
          Object.defineProperty(copy, key, { value: read(member, depth + 1), enumerable: true, writable: true, configurable: true });
        }
        return copy;
      }
      return then(item);
    };
    return read(parsed, 0);
  };
}

const unchanged: Leaf = (value) => value;

const READINGS: ReadonlyArray<[string, Leaf]> = [
  ['as booleans', asBoolean],
  ['as numbers', asNumber],
  ['as booleans and numbers', asEither],
  ['with JSON strings parsed', asParsedJson(unchanged)],
  ['with JSON strings parsed, as booleans', asParsedJson(asBoolean)],
  ['with JSON strings parsed, as numbers', asParsedJson(asNumber)],
  ['with JSON strings parsed, as booleans and numbers', asParsedJson(asEither)],
];

/** A value under a name the policy reads that has other readings: its container, its key there, and those readings. */
interface ReadableLeaf {
  container: object;
  key: string | number;
  /**
   * The field it is a value of, array positions dropped (`msg.channels[]`): one declared type to a backend. Members
   * the expression does not name share their object's `*` field.
   */
  field: string;
  /** By reading name: the value that reading gives (only readings that change it). */
  readings: Map<string, unknown>;
}

/**
 * The values of `args` under names `isRead` accepts (a name read at any depth: everything below it is read) that
 * some reading changes. `args` passed the policy's size and depth limits, so the walk is bounded.
 */
function readableLeaves(
  args: Record<string, unknown>,
  isRead: (name: string) => boolean,
  keepsStrings: ReadonlySet<string>,
  isNamed: (name: string) => boolean,
): { leaves: ReadableLeaf[]; values: number } {
  const leaves: ReadableLeaf[] = [];
  let values = 0;
  const pending: Array<[object, string | number, unknown, boolean, string[] | undefined, string]> = Object.entries(args).map(([key, value]) => [args, key, value, isRead(key), [key], JSON.stringify(key)]);
  while (pending.length > 0) {
    const [container, key, value, read, path, field] = pending.pop()!;
    values += 1;
    if (Array.isArray(value)) {
      value.forEach((item, index) => pending.push([value, index, item, read, undefined, `${field}[]`]));
    } else if (value !== null && typeof value === 'object') {
      // A member the expression names is a field of its own; the ones it does not name are one field together (read
      // only as part of their object: a whole-object comparison, a macro over it), so their number buys no tries.
      for (const [name, member] of Object.entries(value)) {
        pending.push([value, name, member, read || isRead(name), path?.concat(name), isNamed(name) ? `${field}.${JSON.stringify(name)}` : `${field}.*`]);
      }
    } else if (read && !(typeof value === 'string' && path !== undefined && keepsStrings.has(JSON.stringify(path)))) {
      const readings = new Map<string, unknown>();
      for (const [name, leaf] of READINGS) {
        const next = leaf(value);
        if (next !== value) readings.set(name, next);
      }
      if (readings.size > 0) leaves.push({ container, key, field, readings });
    }
  }
  return { leaves, values };
}

/** A copy of `value` with the leaves in `replaced` (container → key → value) replaced; keys kept as they are. */
function copyWith(value: unknown, replaced: Map<object, Map<string | number, unknown>>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const own = replaced.get(value);
  const member = (key: string | number, item: unknown) => (own?.has(key) === true ? own.get(key) : copyWith(item, replaced));
  if (Array.isArray(value)) return value.map((item, index) => member(index, item));
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    // defineProperty, not assignment: a member named `__proto__` stays a member.
    Object.defineProperty(copy, key, { value: member(key, item), enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

function readingOf(args: Record<string, unknown>, leaves: ReadableLeaf[], name: string): Record<string, unknown> {
  const replaced = new Map<object, Map<string | number, unknown>>();
  for (const leaf of leaves) {
    if (!leaf.readings.has(name)) continue;
    let keys = replaced.get(leaf.container);
    if (keys === undefined) replaced.set(leaf.container, (keys = new Map()));
    keys.set(leaf.key, leaf.readings.get(name));
  }
  return copyWith(args, replaced) as Record<string, unknown>;
}

export interface ReadingJudge {
  /** `true` or `false` for a reading the expression evaluates; `undefined` for one it cannot. */
  (args: Record<string, unknown>): boolean | undefined;
}

export type LenientVerdict = { refused: false } | { refused: true; reading: string } | { refused: 'unjudged' };

/**
 * Whether some lenient reading of `args` is one `judge` refuses. Whole readings first; each that cannot be evaluated
 * is tried again one field at a time, within MAX_TRIES and MAX_TRIED_VALUES (past those, the call cannot be judged).
 */
export function refusedAsLenientlyRead(
  args: Record<string, unknown>,
  isRead: (name: string) => boolean,
  judge: ReadingJudge,
  /** Paths (JSON of the names from `args`) the policy only looks up among strings (`args.confirm in ["yes", "no"]`). */
  keepsStrings: ReadonlySet<string> = new Set(),
  /** The names the expression itself spells (each a field of its own); by default, those it reads. */
  isNamed: (name: string) => boolean = isRead,
): LenientVerdict {
  let leaves: ReadableLeaf[];
  let values: number;
  try {
    ({ leaves, values } = readableLeaves(args, isRead, keepsStrings, isNamed));
  } catch (error) {
    if (error instanceof UnjudgeableJson) return { refused: 'unjudged' };
    throw error;
  }
  if (leaves.length === 0) return { refused: false };
  const failed: string[] = [];
  const judged = new Set<string>();
  for (const [name] of READINGS) {
    if (!leaves.some((leaf) => leaf.readings.has(name))) continue;
    // Readings that give every value the same (numerals read as numbers, and as "booleans and numbers") are one.
    const signature = JSON.stringify(leaves.map((leaf) => (leaf.readings.has(name) ? leaf.readings.get(name) : null)));
    if (judged.has(signature)) continue;
    judged.add(signature);
    const verdict = judge(readingOf(args, leaves, name));
    if (verdict === false) return { refused: true, reading: name };
    if (verdict === undefined) failed.push(name);
  }
  if (failed.length === 0) return { refused: false };
  // A reading that cannot be evaluated may owe that to another field read otherwise (a `path` of "1" read as a number
  // breaks `args.path.startsWith(…)`): each field is read so on its own — a field of a nested object too (a Pydantic
  // model's fields each have their type), the items of one list together (they share one).
  const byField = new Map<string, ReadableLeaf[]>();
  for (const leaf of leaves) {
    const own = byField.get(leaf.field);
    if (own === undefined) byField.set(leaf.field, [leaf]);
    else own.push(leaf);
  }
  if (byField.size < 2) return { refused: false };
  // Each field on its own, then every field but one (two fields that refuse only together, beside the one that broke
  // the whole reading). Counted before any is built: each try evaluates the whole expression over all the arguments,
  // so they are bounded by what they cost (a small call may be tried many ways, a large one a few), or a client could
  // buy CPU with fields.
  const withReading = new Map(failed.map((name) => [name, leaves.filter((leaf) => leaf.readings.has(name)).length]));
  const singles: Array<{ field: string; name: string; allBut: boolean }> = [];
  const allButOne: Array<{ field: string; name: string; allBut: boolean }> = [];
  const overBudget = (count: number) => count > MAX_TRIES || count * Math.max(values, 1) > MAX_TRIED_VALUES;
  for (const [field, own] of byField) {
    for (const name of failed) {
      const mine = own.filter((leaf) => leaf.readings.has(name)).length;
      if (mine > 0) singles.push({ field, name, allBut: false });
      if (byField.size > 2 && byField.size <= MAX_ALL_BUT_ONE_FIELDS && withReading.get(name)! > mine) allButOne.push({ field, name, allBut: true });
    }
    // The one-field tries are the judgement; past their budget the call cannot be judged.
    if (overBudget(singles.length)) return { refused: 'unjudged' };
  }
  // Every-field-but-one tries only for a few fields, within what the budget leaves.
  const tries = overBudget(singles.length + allButOne.length) ? singles : [...singles, ...allButOne];
  for (const attempt of tries) {
    const chosen = attempt.allBut ? leaves.filter((leaf) => leaf.field !== attempt.field) : byField.get(attempt.field)!;
    const verdict = judge(readingOf(args, chosen, attempt.name));
    if (verdict === false) return { refused: true, reading: `${attempt.name}, ${attempt.allBut ? 'all fields but one' : 'one field at a time'}` };
  }
  return { refused: false };
}
