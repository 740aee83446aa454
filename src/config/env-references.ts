import { isRecord } from './schema-introspection.ts';
import { pathLabel } from './format-issues.ts';

/**
 * `${ENV_VAR}` references inside string values of the config file, so secrets (client secrets, Redis passwords,
 * metrics tokens) live in the environment or a secret store, never in the file. `$${` writes a literal `${`.
 * Only parsed values are expanded — comments and keys never are — and a reference to a variable that is not set
 * is an error naming the variable, not an empty string that would fail later in a confusing way.
 */

export interface ExpandedReferences {
  value: unknown;
  /** Path labels whose value came (in part) from the environment: never echoed in errors. */
  expanded: Set<string>;
  /** Paths whose whole value was one reference: these may be converted to numbers or booleans. */
  wholeValue: PropertyKey[][];
  problems: string[];
  /** Path labels of the values with a problem: the schema's complaints about them would say the same again. */
  problemLabels: Set<string>;
}

const REFERENCE = /\$\$\{|\$\{([^}]*)\}?/g;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function expandEnvReferences(data: unknown, env: NodeJS.ProcessEnv): ExpandedReferences {
  const result: ExpandedReferences = { value: undefined, expanded: new Set(), wholeValue: [], problems: [], problemLabels: new Set() };
  result.value = walk(data, [], env, result);
  return result;
}

function walk(value: unknown, path: PropertyKey[], env: NodeJS.ProcessEnv, result: ExpandedReferences): unknown {
  if (typeof value === 'string') return expandString(value, path, env, result);
  if (Array.isArray(value)) return value.map((item, index) => walk(item, [...path, index], env, result));
  if (isRecord(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, walk(item, [...path, key], env, result)]));
  }
  return value;
}

function expandString(text: string, path: PropertyKey[], env: NodeJS.ProcessEnv, result: ExpandedReferences): string {
  if (!text.includes('${')) return text;
  const label = pathLabel(path);
  const problemsBefore = result.problems.length;
  let references = 0;
  const expanded = text.replace(REFERENCE, (match: string, name: string | undefined) => {
    if (match === '$${') return '${';
    references++;
    if (!match.endsWith('}')) {
      result.problems.push(`${label}: "\${" is not closed — write \${NAME}, or $\${ for a literal "\${"`);
      return match;
    }
    if (name === undefined || !VARIABLE_NAME.test(name)) {
      result.problems.push(`${label}: "\${${name ?? ''}}" is not a valid environment variable reference (use letters, digits and _)`);
      return match;
    }
    const replacement = env[name];
    if (replacement === undefined) {
      result.problems.push(`${label}: environment variable ${name} is not set — set it in the environment Gatehouse runs in`);
      return match;
    }
    return replacement;
  });
  if (result.problems.length > problemsBefore) result.problemLabels.add(label);
  if (references > 0) {
    result.expanded.add(label);
    if (/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(text)) result.wholeValue.push(path);
  }
  return expanded;
}
