/**
 * A call's arguments as lenient backends read them. The gateway judges the JSON it was sent; a backend may read other
 * values from it: Pydantic's lax mode (FastMCP, the Python SDK's tools) turns `"true"`, `"yes"`, `"on"`, `"1"`, 1 into
 * `True`, `"5"` into 5 and `True` into 1 where a parameter wants them, and the Python SDK parses a string that holds
 * JSON (`"{\"recursive\": true}"`) for a parameter that is not a string. A tool policy written for the types the tool
 * declares (`args.recursive != true`, `!(1 in args.channels)`, `args.opts != {"recursive": true}`) then allowed a call
 * the backend ran as the very value it refuses — whatever the shape of the expression, lists and maps included.
 *
 * So an allowed call is judged again under each such reading (argument-policy.ts): every leaf read as a boolean
 * where it can be, as a number where it can be, both (strings that name a boolean as booleans, numeric ones as
 * numbers), and strings holding a JSON object or array parsed. A reading the policy refuses refuses the call; one it
 * cannot evaluate (a boolean where it compares strings: no backend reads that field so) is no refusal. The gateway has
 * no schema to know which reading a backend takes, so it takes them all; only values that have another reading cost
 * an evaluation.
 */

/** Pydantic's strings for booleans (lax mode), compared case-insensitively after trimming. */
const TRUE_WORDS = new Set(['true', 'yes', 'on', 't', 'y', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', 'f', 'n', '0']);
/** A number as Pydantic reads one from a string: optional sign, digits, optional fraction and exponent; `_` between digits. */
const NUMERIC = /^[+-]?(?:\d(?:_?\d)*)?(?:\.\d(?:_?\d)*)?(?:[eE][+-]?\d+)?$/;

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

export interface LenientReading {
  /** How the arguments were read, for the log. */
  name: string;
  args: Record<string, unknown>;
}

/**
 * The readings of `args` that differ from it. `args` passed the policy's size and depth limits, so the copies are
 * bounded; object keys are kept as they are (only values are read otherwise).
 */
export function lenientReadings(args: Record<string, unknown>): LenientReading[] {
  const readings: LenientReading[] = [];
  for (const [name, leaf] of READINGS) {
    let changed = false;
    const read = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(read);
      if (value !== null && typeof value === 'object') {
        const copy: Record<string, unknown> = {};
        for (const [key, member] of Object.entries(value)) {
          // defineProperty, not assignment: a member named `__proto__` stays a member.
          Object.defineProperty(copy, key, { value: read(member), enumerable: true, writable: true, configurable: true });
        }
        return copy;
      }
      const next = leaf(value);
      if (next !== value) changed = true;
      return next;
    };
    const args2 = read(args) as Record<string, unknown>;
    if (changed) readings.push({ name, args: args2 });
  }
  return readings;
}
