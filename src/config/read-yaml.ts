import { parseDocument } from 'yaml';

/**
 * Parses the config file's YAML. Syntax errors become one-line problems with line and column; the source excerpt
 * the yaml package adds is dropped because the offending line may hold a secret. Duplicate keys are errors (the
 * yaml default), so a setting cannot be silently overridden further down the file.
 */
export function parseYamlConfig(text: string): { value: unknown; problems: string[] } {
  // A YAML alias bomb would expand exponentially; the yaml package caps alias expansion (maxAliasCount) by default.
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    return { value: undefined, problems: document.errors.map((error) => describeYamlError(error)) };
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
