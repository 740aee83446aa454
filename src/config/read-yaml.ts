import { parseDocument } from 'yaml';

/**
 * Parses the config file's YAML. Syntax errors become one-line problems with line and column; the source excerpt
 * the yaml package adds is dropped because the offending line may hold a secret. Duplicate keys are errors (the
 * yaml default), so a setting cannot be silently overridden further down the file.
 */
export function parseYamlConfig(text: string): { value: unknown; problems: string[] } {
  const depth = flowDepthBeyond(text, MAX_FLOW_DEPTH);
  if (depth !== undefined) return { value: undefined, problems: [`line ${depth.line}: brackets nested more than ${MAX_FLOW_DEPTH} deep (YAML syntax)`] };
  // A YAML alias bomb would expand exponentially; the yaml package caps alias expansion (maxAliasCount) by default.
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    // One line per kind of problem: a broken file can repeat one error thousands of times (one per unclosed bracket).
    return { value: undefined, problems: [...new Set(document.errors.map((error) => describeYamlError(error)))].slice(0, MAX_PROBLEMS) };
  }
  try {
    return { value: document.toJS(), problems: [] };
  } catch (error) {
    return { value: undefined, problems: [`YAML: ${firstLine((error as Error).message)}`] };
  }
}

function describeYamlError(error: { message: string; linePos?: [{ line: number; col: number }, ...unknown[]] }): string {
  const position = error.linePos?.[0];
  const message = firstLine(error.message).replace(/ at line \d+, column \d+:?$/, '');
  return position ? `line ${position.line}, column ${position.col}: ${message} (YAML syntax)` : `${message} (YAML syntax)`;
}

const firstLine = (text: string): string => text.split('\n')[0] ?? text;

/** No configuration nests flow collections (`[…]`, `{…}`) anywhere near this deep. */
const MAX_FLOW_DEPTH = 64;
const MAX_PROBLEMS = 20;

/**
 * Where flow collections first nest deeper than `limit`, outside quoted scalars and comments; undefined if they never
 * do. The yaml package parses and converts nesting recursively: half a million `[` (under the 1 MB file limit) held
 * the event loop for seconds on a reload, grew the heap by ~280 MB and logged the stack overflow once per level.
 */
function flowDepthBeyond(text: string, limit: number): { line: number } | undefined {
  let depth = 0;
  let line = 1;
  let quote: '"' | "'" | undefined;
  let comment = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (char === '\n') {
      line += 1;
      comment = false;
      continue;
    }
    if (comment) continue;
    if (quote !== undefined) {
      if (char === '\\' && quote === '"') index += 1;
      else if (char === quote) quote = undefined;
      continue;
    }
    if (char === '"' || char === "'") {
      // A quote opens a scalar only where one can start (after space, a bracket, a comma or a colon); inside a plain
      // scalar (`it's`) it is text.
      const before = index === 0 ? ' ' : text[index - 1];
      if (before === ' ' || before === '\t' || before === '[' || before === '{' || before === ',' || before === ':' || before === '\n' || before === '-') quote = char;
    } else if (char === '#' && (index === 0 || text[index - 1] === ' ' || text[index - 1] === '\t')) comment = true;
    else if (char === '[' || char === '{') {
      depth += 1;
      if (depth > limit) return { line };
    } else if ((char === ']' || char === '}') && depth > 0) depth -= 1;
  }
  return undefined;
}
