import type { z } from 'zod';
import { nearest } from './nearest.ts';
import { isRecord, literalValues, objectShapeFor, schemaAt, unwrap, type SchemaNode } from './schema-introspection.ts';

/**
 * Turns zod issues into one-line problems a person can act on: the field path, what is wrong, the value that was
 * given (unless it may be a secret) and the fix — `server.port: expected a number, got "abc"`,
 * `servr: unknown key — did you mean "server"?`.
 */

/** Fields whose values are never echoed, whatever their type. */
const SECRET_FIELDS = new Set(['clientSecret', 'initialAccessToken', 'metricsToken', 'redisUrl', 'password']);

export interface IssueContext {
  root: SchemaNode;
  /** The raw input that was validated. */
  data: unknown;
  /** Where a value came from when not the file, by path label: `server.port` → `GATEHOUSE_PORT`. */
  origins: ReadonlyMap<string, string>;
  /** Path labels whose values came from `${ENV}` references or secret overrides: never echoed. */
  sensitive: ReadonlySet<string>;
}

export function formatIssues(issues: readonly z.core.$ZodIssue[], context: IssueContext): string[] {
  const problems = issues.flatMap((issue) => formatIssue(issue, context));
  return [...new Set(problems)];
}

export function pathLabel(path: readonly PropertyKey[]): string {
  let label = '';
  for (const key of path) {
    if (typeof key === 'number') label += `[${key}]`;
    else label += label ? `.${String(key)}` : String(key);
  }
  return label || '(top level)';
}

function formatIssue(issue: z.core.$ZodIssue, context: IssueContext): string[] {
  const path = issue.path;
  const value = valueAt(context.data, path);
  const where = located(path, context);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const keyWhere = located([...path, key], context);
        const valid = Object.keys(objectShapeFor(schemaAt(context.root, path, context.data) ?? context.root, value) ?? {});
        const suggestion = nearest(key, valid);
        return suggestion
          ? `${keyWhere}: unknown key — did you mean "${suggestion}"?`
          : `${keyWhere}: unknown key — valid keys here: ${valid.join(', ')}`;
      });
    case 'invalid_type':
      if (value === undefined) return [`${where}: required — ${requiredHint(path, context)}`];
      return [`${where}: expected ${describeExpected(issue.expected)}, got ${shown(value, path, context)}`];
    case 'invalid_value':
      return [`${where}: ${oneOf(issue.values, value, path, context)}`];
    case 'invalid_union': {
      const options = 'options' in issue ? issue.options : undefined;
      if (issue.discriminator && options) return [`${where}: ${oneOf(options, value, path, context)}`];
      // A plain union (e.g. server.trustProxy: boolean | number | list): say every shape that would do.
      const expected = issue.errors.flatMap((branch) => branch.filter((inner) => inner.code === 'invalid_type' && inner.path.length === 0));
      if (expected.length === issue.errors.length && expected.length > 0) {
        const names = expected.map((inner) => describeExpected((inner as z.core.$ZodIssueInvalidType).expected));
        return [`${where}: expected ${names.slice(0, -1).join(', ')} or ${names.at(-1)}, got ${shown(value, path, context)}`];
      }
      return [`${where}: ${issue.message} (got ${shown(value, path, context)})`];
    }
    case 'invalid_key': {
      const key = String(path.at(-1));
      const reason = issue.issues.map((inner) => inner.message).join('; ');
      return [`${located(path.slice(0, -1), context)}: key ${JSON.stringify(key)} — ${reason}`];
    }
    case 'too_small':
      return [`${where}: ${tooSmall(issue)}${gotSuffix(value, path, context)}`];
    case 'too_big':
      return [`${where}: must be at most ${String(issue.maximum)}${gotSuffix(value, path, context)}`];
    default: {
      const message = issue.message.startsWith('Invalid') ? 'has an invalid format' : issue.message;
      return [`${where}: ${message}${gotSuffix(value, path, context)}`];
    }
  }
}

function located(path: readonly PropertyKey[], context: IssueContext): string {
  const label = pathLabel(path);
  const origin = context.origins.get(label);
  return origin ? `${label} (from ${origin})` : label;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let current = data;
  for (const key of path) {
    if (!isRecord(current) && !Array.isArray(current)) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function isSensitive(path: readonly PropertyKey[], context: IssueContext): boolean {
  if (path.some((key) => typeof key === 'string' && SECRET_FIELDS.has(key))) return true;
  return context.sensitive.has(pathLabel(path));
}

/** How a given value is shown in a problem: strings quoted, containers by kind, secrets never. */
function shown(value: unknown, path: readonly PropertyKey[], context: IssueContext): string {
  if (value === null) return 'nothing (an empty value)';
  if (Array.isArray(value)) return 'a list';
  if (isRecord(value)) return 'a mapping';
  if (isSensitive(path, context)) return typeof value === 'string' ? 'a string (value hidden)' : `a ${typeof value}`;
  if (typeof value === 'string') {
    const hidden = withoutSecrets(value);
    return JSON.stringify(hidden.length > 80 ? `${hidden.slice(0, 77)}...` : hidden);
  }
  return String(value);
}

/**
 * A URL's secrets, in any field: a backend or issuer URL with credentials in it, mistyped, was echoed whole into
 * `config check`, the reload log and the console's last-reload box. Its userinfo is hidden up to the last `@` (a
 * password may hold `#`, `/`, `?` or `@` unencoded — which is what made the URL invalid), and its query values as the
 * routes page hides them (an Azure Functions `?code=` is a key). A value with no scheme yet (`user:pw@host/…`) is
 * read the same way; hiding too much of a value that only looked like one costs a clearer message, nothing else.
 */
function withoutSecrets(value: string): string {
  const authority = /^\s*(?:[a-z][a-z0-9+.-]*:)?\/\//i.exec(value)?.[0].length ?? (/^[^\s/@]*:[^\s]*@/.test(value) ? 0 : undefined);
  if (authority === undefined) return value;
  const at = value.lastIndexOf('@');
  const shown = at >= authority ? `${value.slice(0, authority)}(credentials hidden)${value.slice(at)}` : value;
  return shown.replace(/([?&][^=&#]*=)[^&#]*/g, '$1…');
}

function gotSuffix(value: unknown, path: readonly PropertyKey[], context: IssueContext): string {
  return value === undefined ? '' : ` (got ${shown(value, path, context)})`;
}

function describeExpected(expected: string): string {
  switch (expected) {
    case 'number':
      return 'a number';
    case 'int':
      return 'a whole number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
    case 'record':
      return 'a mapping of keys to values';
    default:
      return expected;
  }
}

function oneOf(values: readonly unknown[], value: unknown, path: readonly PropertyKey[], context: IssueContext): string {
  const listed = values.map((option) => JSON.stringify(option)).join(', ');
  if (value === undefined) return `required — one of ${listed}`;
  const suggestion = typeof value === 'string' ? nearest(value, values.map(String)) : undefined;
  const hint = suggestion ? ` — did you mean "${suggestion}"?` : '';
  return `must be one of ${listed} (got ${shown(value, path, context)})${hint}`;
}

function tooSmall(issue: z.core.$ZodIssueTooSmall): string {
  const minimum = Number(issue.minimum);
  switch (issue.origin) {
    case 'array':
      return `must list at least ${minimum} item${minimum === 1 ? '' : 's'}`;
    case 'string':
      return minimum <= 1 ? 'must not be empty' : `must be at least ${minimum} characters long`;
    default:
      return issue.inclusive === false ? `must be more than ${minimum}` : `must be at least ${minimum}`;
  }
}

/** A missing required field: say what it is for, from its `.describe()` text, or what values it takes. */
function requiredHint(path: readonly PropertyKey[], context: IssueContext): string {
  const node = schemaAt(context.root, path, context.data);
  if (!node) return 'add it';
  const values = literalValues(node);
  if (values.length > 0) return `one of ${values.map((option) => JSON.stringify(option)).join(', ')}`;
  return unwrap(node).description ?? 'add it';
}
