import { readOperatorFileSync } from './operator-file.ts';
import { dirname, resolve } from 'node:path';
import { checkConfigRules } from './config-rules.ts';
import { ConfigError } from './config-error.ts';
import { demoConfigInput, type DemoConfigOptions } from './demo-defaults.ts';
import { applyEnvOverrides, convertOverride, setAtPath, type AppliedOverride } from './env-overrides.ts';
import { expandEnvReferences } from './env-references.ts';
import { resolveFilePaths, unreadableFileReason } from './file-paths.ts';
import { formatIssues } from './format-issues.ts';
import { resolvePublicUrl } from './public-url.ts';
import { parseYamlConfig } from './read-yaml.ts';
import { configSchema, type GatehouseConfig } from './schema.ts';
import { baseType, isRecord, schemaAt } from './schema-introspection.ts';

export { ConfigError } from './config-error.ts';
export { resolvePublicUrl } from './public-url.ts';

/** Settings given as command-line flags (`gatehouse start --port 9000`); they win over the file and environment. */
export interface ConfigFlags {
  port?: number | string;
  host?: string;
  publicUrl?: string;
}

export interface LoadConfigOptions {
  /** The YAML file; without one (and without `GATEHOUSE_CONFIG`) the local demo defaults are used. */
  file?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  flags?: ConfigFlags;
}

export interface LoadedConfig {
  config: GatehouseConfig;
  /** `resolvePublicUrl(config)`: the issuer, no trailing slash. */
  publicUrl: string;
  /** Absolute path of the file read, or undefined for the demo defaults. */
  file: string | undefined;
  /** Things that are allowed but worth saying at start-up (plain http on localhost, unknown GATEHOUSE_* variables). */
  warnings: string[];
}

/**
 * Reads, expands, overrides and validates the configuration. Order: YAML file → `${ENV}` references → relative
 * paths resolved against the file → `GATEHOUSE_*` overrides → command-line flags → demo defaults underneath when
 * `mode: demo` → schema → cross-field rules. Every problem found is reported at once in a ConfigError.
 */
export function loadConfig(options: LoadConfigOptions): LoadedConfig {
  const fileOption = options.file ?? (options.env.GATEHOUSE_CONFIG || undefined);
  const file = fileOption === undefined ? undefined : resolve(options.cwd, fileOption);
  const source = fileOption;
  const sensitive = new Set<string>();
  let raw: Record<string, unknown>;
  // Every problem at once: an unset variable is reported with the file's other mistakes, not before them, so an
  // operator fixing a config does not run the check once per kind of mistake.
  let referenceProblems: string[] = [];
  let referenceLabels = new Set<string>();

  if (file === undefined) {
    raw = { mode: 'demo' };
  } else {
    const expanded = expandEnvReferences(readConfigFile(file, source ?? file), options.env);
    referenceProblems = expanded.problems;
    referenceLabels = expanded.problemLabels;
    raw = expanded.value as Record<string, unknown>;
    for (const label of expanded.expanded) sensitive.add(label);
    for (const path of expanded.wholeValue) convertWholeReference(raw, path);
    resolveFilePaths(raw, dirname(file));
  }

  const { applied, warnings } = applyEnvOverrides(raw, options.env);
  applied.push(...applyFlags(raw, options.flags));
  if (raw.mode === 'demo') raw = underDemoDefaults(raw);

  const origins = new Map(applied.map((override) => [override.path, override.origin]));
  for (const override of applied) if (override.secret) sensitive.add(override.path);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const schemaProblems = formatIssues(parsed.error.issues, { root: configSchema, data: raw, origins, sensitive });
    // A value whose reference could not be expanded still holds the reference text: what the schema says about it
    // (not a URL, not a number) is the same problem seen again.
    const others = schemaProblems.filter((problem) => ![...referenceLabels].some((label) => problem.startsWith(`${label}:`)));
    throw new ConfigError([...referenceProblems, ...others], source);
  }
  if (referenceProblems.length > 0) throw new ConfigError(referenceProblems, source);

  const config = parsed.data;
  resolveFilePaths(config, options.cwd);
  const rules = checkConfigRules(config);
  if (rules.problems.length > 0) throw new ConfigError(rules.problems, source);
  return { config, publicUrl: resolvePublicUrl(config), file, warnings: [...warnings, ...rules.warnings] };
}

function readConfigFile(file: string, shownAs: string): Record<string, unknown> {
  let text: string;
  try {
    text = readOperatorFileSync(file);
  } catch (error) {
    throw new ConfigError([`config file ${unreadableFileReason(error)} — check the path, or run \`gatehouse init\` to write one`], shownAs);
  }
  const { value, problems } = parseYamlConfig(text);
  if (problems.length > 0) throw new ConfigError(problems, shownAs);
  if (value === null || value === undefined) return {};
  if (!isRecord(value)) {
    throw new ConfigError([`the file must hold a mapping of settings (such as "server:" and "upstream:"), not ${Array.isArray(value) ? 'a list' : 'a single value'}`], shownAs);
  }
  return value;
}

/** `port: ${PORT}` reads as the string "8080"; where the schema wants a number or boolean, convert it. */
function convertWholeReference(raw: Record<string, unknown>, path: PropertyKey[]): void {
  const node = schemaAt(configSchema, path, raw);
  const type = node ? baseType(node) : undefined;
  if (type !== 'number' && type !== 'boolean') return;
  let holder: unknown = raw;
  for (const key of path.slice(0, -1)) holder = (holder as Record<PropertyKey, unknown>)[key];
  const last = path[path.length - 1] as PropertyKey;
  const text = (holder as Record<PropertyKey, unknown>)[last];
  if (typeof text !== 'string') return;
  const converted = type === 'number' ? convertOverride('number', text) : text === 'true' ? true : text === 'false' ? false : text;
  (holder as Record<PropertyKey, unknown>)[last] = converted;
}

function applyFlags(raw: Record<string, unknown>, flags: ConfigFlags | undefined): AppliedOverride[] {
  const applied: AppliedOverride[] = [];
  const set = (path: string, value: unknown, origin: string) => {
    setAtPath(raw, path, typeof value === 'string' && path === 'server.port' ? convertOverride('number', value) : value);
    applied.push({ path, origin, secret: false });
  };
  if (flags?.port !== undefined) set('server.port', flags.port, '--port');
  if (flags?.host !== undefined) set('server.host', flags.host, '--host');
  if (flags?.publicUrl !== undefined) set('server.publicUrl', flags.publicUrl, '--public-url');
  return applied;
}

/**
 * `mode: demo`: the demo configuration underneath what was given, so a demo file only states what it changes.
 * The demo's public URL follows the (possibly overridden) gateway port unless a public URL was given.
 */
function underDemoDefaults(raw: Record<string, unknown>): Record<string, unknown> {
  const server = isRecord(raw.server) ? raw.server : {};
  const demo = isRecord(raw.demo) ? raw.demo : {};
  const options: DemoConfigOptions = { demo: {} };
  if (typeof server.port === 'number') options.port = server.port;
  for (const key of ['identityProviderPort', 'graphServerPort', 'directoryApiPort'] as const) {
    const value = demo[key];
    if (typeof value === 'number' && options.demo) options.demo[key] = value;
  }
  const merged = mergeSettings(demoConfigInput(options), raw) as Record<string, unknown>;
  // A different identity provider replaces the local one as a whole: mixing the two would make a config nobody wrote.
  if (raw.upstream !== undefined) merged.upstream = raw.upstream;
  return merged;
}

/** Mappings merge key by key; lists and single values given replace the default. */
function mergeSettings(base: unknown, given: unknown): unknown {
  if (!isRecord(base) || !isRecord(given)) return given === undefined ? base : given;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(given)) merged[key] = mergeSettings(base[key], value);
  return merged;
}
