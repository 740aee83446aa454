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
 * refuses nothing. Since one value read otherwise can make a whole reading fail to evaluate (a path `"1"` read as a
 * number breaks `args.path.startsWith(…)`, hiding the boolean read beside it), a reading that fails is tried again one
 * value at a time. The gateway has no schema to know which reading a backend takes, so it takes them all; only values
 * with another reading cost an evaluation, and one-at-a-time tries stop at MAX_SINGLE_READINGS.
 */

/** Pydantic's strings for booleans (lax mode), compared case-insensitively after trimming. */
const TRUE_WORDS = new Set(['true', 'yes', 'on', 't', 'y', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', 'f', 'n', '0']);
/** A number as Pydantic reads one from a string: optional sign, digits, optional fraction and exponent; `_` between digits. */
const NUMERIC = /^[+-]?(?:\d(?:_?\d)*)?(?:\.\d(?:_?\d)*)?(?:[eE][+-]?\d+)?$/;

/** The most values tried one at a time after a whole reading failed to evaluate: a bound on a call's evaluations. */
export const MAX_SINGLE_READINGS = 64;

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

function asParsedJson(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const text = value.trim();
  if (!text.startsWith('{') && !text.startsWith('[')) return value;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return value;
  }
}

const READINGS: ReadonlyArray<[string, Leaf]> = [
  ['as booleans', asBoolean],
  ['as numbers', asNumber],
  ['as booleans and numbers', asEither],
  ['with JSON strings parsed', asParsedJson],
];

/** A value under a name the policy reads that has other readings: its container, its key there, and those readings. */
interface ReadableLeaf {
  container: object;
  key: string | number;
  /** By reading name: the value that reading gives (only readings that change it). */
  readings: Map<string, unknown>;
}

/**
 * The values of `args` under names `isRead` accepts (a name read at any depth: everything below it is read) that
 * some reading changes. `args` passed the policy's size and depth limits, so the walk is bounded.
 */
function readableLeaves(args: Record<string, unknown>, isRead: (name: string) => boolean): ReadableLeaf[] {
  const leaves: ReadableLeaf[] = [];
  const pending: Array<[object, string | number, unknown, boolean]> = Object.entries(args).map(([key, value]) => [args, key, value, isRead(key)]);
  while (pending.length > 0) {
    const [container, key, value, read] = pending.pop()!;
    if (Array.isArray(value)) {
      value.forEach((item, index) => pending.push([value, index, item, read]));
    } else if (value !== null && typeof value === 'object') {
      for (const [name, member] of Object.entries(value)) pending.push([value, name, member, read || isRead(name)]);
    } else if (read) {
      const readings = new Map<string, unknown>();
      for (const [name, leaf] of READINGS) {
        const next = leaf(value);
        if (next !== value) readings.set(name, next);
      }
      if (readings.size > 0) leaves.push({ container, key, readings });
    }
  }
  return leaves;
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
 * is tried again one value at a time, up to MAX_SINGLE_READINGS values (past that, the call cannot be judged).
 */
export function refusedAsLenientlyRead(args: Record<string, unknown>, isRead: (name: string) => boolean, judge: ReadingJudge): LenientVerdict {
  const leaves = readableLeaves(args, isRead);
  if (leaves.length === 0) return { refused: false };
  const failed: string[] = [];
  for (const [name] of READINGS) {
    if (!leaves.some((leaf) => leaf.readings.has(name))) continue;
    const verdict = judge(readingOf(args, leaves, name));
    if (verdict === false) return { refused: true, reading: name };
    if (verdict === undefined) failed.push(name);
  }
  if (failed.length === 0) return { refused: false };
  const singles = leaves.filter((leaf) => failed.some((name) => leaf.readings.has(name)));
  if (singles.length > MAX_SINGLE_READINGS) return { refused: 'unjudged' };
  for (const leaf of singles) {
    for (const name of failed) {
      if (!leaf.readings.has(name)) continue;
      const verdict = judge(readingOf(args, [leaf], name));
      if (verdict === false) return { refused: true, reading: `${name}, one value at a time` };
    }
  }
  return { refused: false };
}
