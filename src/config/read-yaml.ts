import { Lexer, parseDocument } from 'yaml';

/**
 * Parses the config file's YAML. Syntax errors become one-line problems with line and column; the source excerpt
 * the yaml package adds is dropped because the offending line may hold a secret. Duplicate keys are errors (the
 * yaml default), so a setting cannot be silently overridden further down the file.
 */
export function parseYamlConfig(text: string): { value: unknown; problems: string[] } {
  const depth = flowDepthBeyond(text, MAX_FLOW_DEPTH);
  if (depth !== undefined) return { value: undefined, problems: [`line ${depth.line}: collections nested more than ${MAX_FLOW_DEPTH} deep (YAML syntax)`] };
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

/** No configuration nests collections on one line or in flow (`[…]`, `{…}`) anywhere near this deep. */
const MAX_FLOW_DEPTH = 64;
const MAX_PROBLEMS = 20;

/**
 * Where collections first nest deeper than `limit`, or undefined if they never do: flow collections (`[`, `{`), and
 * block sequences or explicit keys written compactly on one line (`- - - x`, `? ? x`), which need no indentation per
 * level. Read with the yaml package's own lexer (linear, and it knows YAML's quoting, comments and block scalars, as
 * a character scan does not: a quote in `the '90s` hid every later bracket from one). The parser and its conversion
 * recurse per level: half a million `[` (under the 1 MB file limit) held a reload's event loop for seconds, grew the
 * heap by ~280 MB and logged the stack overflow once per level. Nesting by indentation costs a line per level, which
 * the file limit keeps to a depth the parser takes in its stride.
 */
function flowDepthBeyond(text: string, limit: number): { line: number } | undefined {
  let flow = 0;
  let compact = 0;
  let line = 1;
  for (const token of new Lexer().lex(text)) {
    if (token === '[' || token === '{') flow += 1;
    else if ((token === ']' || token === '}') && flow > 0) flow -= 1;
    else if (token === '-' || token === '?') compact += 1;
    else if (token.includes('\n')) {
      for (const char of token) if (char === '\n') line += 1;
      compact = 0;
      continue;
    } else continue;
    if (flow + compact > limit) return { line };
  }
  return undefined;
}
