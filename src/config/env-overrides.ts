import { nearest } from './nearest.ts';
import { isRecord } from './schema-introspection.ts';

/**
 * `GATEHOUSE_*` environment variables that override single settings, for container platforms where the file is
 * baked into the image and a few values differ per deployment. A small explicit table rather than a generic
 * `GATEHOUSE_SERVER__PORT` mapping: every variable is documented and a typo is reported with a suggestion.
 * An empty variable counts as unset.
 */
export interface EnvOverride {
  variable: string;
  /** Dotted path of the setting it replaces. */
  path: string;
  kind: 'string' | 'number' | 'trustProxy';
  /** Never echoed in errors (connection strings with passwords, bearer tokens). */
  secret?: boolean;
}

export const ENV_OVERRIDES: readonly EnvOverride[] = [
  { variable: 'GATEHOUSE_MODE', path: 'mode', kind: 'string' },
  { variable: 'GATEHOUSE_HOST', path: 'server.host', kind: 'string' },
  { variable: 'GATEHOUSE_PORT', path: 'server.port', kind: 'number' },
  { variable: 'GATEHOUSE_PUBLIC_URL', path: 'server.publicUrl', kind: 'string' },
  { variable: 'GATEHOUSE_TRUST_PROXY', path: 'server.trustProxy', kind: 'trustProxy' },
  { variable: 'GATEHOUSE_STORE', path: 'store.type', kind: 'string' },
  { variable: 'GATEHOUSE_SQLITE_PATH', path: 'store.sqlitePath', kind: 'string' },
  { variable: 'GATEHOUSE_REDIS_URL', path: 'store.redisUrl', kind: 'string', secret: true },
  { variable: 'GATEHOUSE_KEYS_SOURCE', path: 'keys.source', kind: 'string' },
  { variable: 'GATEHOUSE_KEYS_FILE', path: 'keys.file', kind: 'string' },
  { variable: 'GATEHOUSE_LOG_LEVEL', path: 'log.level', kind: 'string' },
  { variable: 'GATEHOUSE_METRICS_TOKEN', path: 'admin.metricsToken', kind: 'string', secret: true },
  { variable: 'GATEHOUSE_AUDIT_OUTPUT', path: 'audit.output', kind: 'string' },
  { variable: 'GATEHOUSE_DEMO_IDP_PORT', path: 'demo.identityProviderPort', kind: 'number' },
  { variable: 'GATEHOUSE_DEMO_GRAPH_PORT', path: 'demo.graphServerPort', kind: 'number' },
  { variable: 'GATEHOUSE_DEMO_DIRECTORY_PORT', path: 'demo.directoryApiPort', kind: 'number' },
];

/** `GATEHOUSE_*` variables that are not setting overrides but are read elsewhere. */
// GATEHOUSE_TEST_* belong to the test runner (e.g. GATEHOUSE_TEST_ARTIFACTS), which spawns the CLI in some tests.
export const OTHER_GATEHOUSE_VARIABLES: readonly string[] = [
  'GATEHOUSE_CONFIG',
  'GATEHOUSE_DEBUG',
  'GATEHOUSE_TEST_ARTIFACTS',
  'GATEHOUSE_TEST_TIMEOUT_MS',
  'GATEHOUSE_TEST_RUN_TIMEOUT_MS',
];

export interface AppliedOverride {
  path: string;
  /** What set it, for error messages: the variable name or a CLI flag. */
  origin: string;
  secret: boolean;
}

/**
 * Sets `value` at a dotted `path` in the raw (not yet validated) config, creating objects on the way. Strings that
 * should be numbers are converted only when they look like numbers, so `GATEHOUSE_PORT=abc` still reaches the
 * schema and is reported as `server.port (from GATEHOUSE_PORT): expected a number, got "abc"`.
 */
export function setAtPath(raw: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let target = raw;
  for (const key of keys.slice(0, -1)) {
    const next = target[key];
    if (!isRecord(next)) target[key] = {};
    target = target[key] as Record<string, unknown>;
  }
  target[keys[keys.length - 1] as string] = value;
}

export function convertOverride(kind: EnvOverride['kind'], text: string): unknown {
  const trimmed = text.trim();
  if (kind === 'number') return /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : text;
  if (kind === 'trustProxy') {
    if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
    if (/^\d+$/.test(trimmed)) return Number(trimmed);
    return trimmed.split(',').map((entry) => entry.trim()).filter(Boolean);
  }
  return text;
}

/** Applies every set variable of the table; returns what was applied and warnings for unknown `GATEHOUSE_*` names. */
export function applyEnvOverrides(
  raw: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): { applied: AppliedOverride[]; warnings: string[] } {
  const applied: AppliedOverride[] = [];
  for (const override of ENV_OVERRIDES) {
    const text = env[override.variable];
    if (text === undefined || text === '') continue;
    setAtPath(raw, override.path, convertOverride(override.kind, text));
    applied.push({ path: override.path, origin: override.variable, secret: override.secret === true });
  }
  const known = [...ENV_OVERRIDES.map((override) => override.variable), ...OTHER_GATEHOUSE_VARIABLES];
  const warnings = Object.keys(env)
    .filter((name) => name.startsWith('GATEHOUSE_') && !known.includes(name))
    .map((name) => {
      const suggestion = nearest(name, known);
      return `${name}: not a Gatehouse setting, ignored${suggestion ? ` — did you mean ${suggestion}?` : ''}`;
    });
  return { applied, warnings };
}
