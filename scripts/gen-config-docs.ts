import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV_OVERRIDES } from '../src/config/env-overrides.ts';
import { FILE_PATH_SETTINGS } from '../src/config/file-paths.ts';
import { configSchema } from '../src/config/schema.ts';
import { defOf, literalValues, objectShape, unwrap, type SchemaNode } from '../src/config/schema-introspection.ts';

/**
 * Writes docs/configuration.md from the config schema (every `.describe()` text, type and default) plus the
 * hand-written sections below, so the reference cannot drift from the code: test/config/docs.test.ts regenerates
 * it and fails on any difference.
 *
 *   node scripts/gen-config-docs.ts           rewrite docs/configuration.md
 *   node scripts/gen-config-docs.ts --check   exit 1 if it is out of date
 */

export const CONFIGURATION_DOC_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'configuration.md');

interface Row {
  key: string;
  type: string;
  defaultText: string;
  description: string;
}

export function renderConfigurationDoc(): string {
  const sections = Object.entries(objectShape(configSchema) ?? {}).map(([key, node]) => renderSection(key, node));
  return [INTRO, renderEnvOverrides(), HAND_WRITTEN, '## Reference', '', ...sections].join('\n').replace(/\n{3,}/g, '\n\n');
}

function renderSection(key: string, node: SchemaNode): string {
  const info = unwrap(node);
  const rows: Row[] = [];
  collectRows(key, node, rows, '');
  const isObject = objectShape(node) !== undefined;
  const lines = [`### \`${key}\``, '', isObject ? (info.description ?? '') : '', ''];
  lines.push('| Setting | Type | Default | Description |', '|---|---|---|---|');
  for (const row of rows) lines.push(`| \`${row.key}\` | ${cell(row.type)} | ${cell(row.defaultText)} | ${cell(row.description)} |`);
  lines.push('');
  return lines.join('\n');
}

function collectRows(key: string, node: SchemaNode, rows: Row[], note: string): void {
  const info = unwrap(node);
  const def = defOf(info.node);
  const description = `${note}${info.description ?? ''}`;
  if (def.type === 'object') {
    if ((key.includes('.') || key.includes('[')) && description) rows.push({ key, type: 'object', defaultText: '', description });
    for (const [child, childNode] of Object.entries(def.shape ?? {})) collectRows(`${key}.${child}`, childNode, rows, '');
    return;
  }
  rows.push({ key, type: typeName(info.node), defaultText: defaultText(info), description });
  if (def.type === 'array' && def.element && objectShape(def.element)) {
    for (const [child, childNode] of Object.entries(objectShape(def.element) ?? {})) collectRows(`${key}[].${child}`, childNode, rows, '');
  }
  if (def.type === 'record' && def.valueType && objectShape(def.valueType)) {
    for (const [child, childNode] of Object.entries(objectShape(def.valueType) ?? {})) collectRows(`${key}.<name>.${child}`, childNode, rows, '');
  }
  if (def.type === 'union' && def.discriminator) {
    for (const option of def.options ?? []) {
      const shape = objectShape(option) ?? {};
      const tags = literalValues(shape[def.discriminator] as SchemaNode).map((value) => `\`${def.discriminator}: ${String(value)}\``).join(' or ');
      for (const [child, childNode] of Object.entries(shape)) {
        if (child !== def.discriminator) collectRows(`${key}.${child}`, childNode, rows, `With ${tags}: `);
      }
    }
  }
}

function typeName(node: SchemaNode): string {
  const inner = unwrap(node).node;
  const def = defOf(inner);
  switch (def.type) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'number':
      return numberType(def.checks ?? []);
    case 'enum':
    case 'literal':
      return literalValues(inner).map((value) => `\`${String(value)}\``).join(' \\| ');
    case 'array':
      return def.element ? `list of ${objectShape(def.element) ? 'objects' : typeName(def.element)}` : 'list';
    case 'record':
      return def.valueType ? `map of name → ${objectShape(def.valueType) ? 'object' : typeName(def.valueType)}` : 'map';
    case 'union':
      return def.discriminator ? `object, by \`${def.discriminator}\`` : (def.options ?? []).map(typeName).join(' \\| ');
    case 'object':
      return 'object';
    default:
      return def.type;
  }
}

function numberType(checks: NonNullable<ReturnType<typeof defOf>['checks']>): string {
  let integer = false;
  let min: unknown;
  let max: unknown;
  for (const check of checks) {
    const checkDef = check._zod.def;
    if (checkDef.check === 'number_format' && checkDef.format === 'safeint') integer = true;
    if (checkDef.check === 'greater_than') min = checkDef.inclusive ? checkDef.value : `>${String(checkDef.value)}`;
    if (checkDef.check === 'less_than') max = checkDef.value;
  }
  const base = integer ? 'integer' : 'number';
  if (min === '>0' && max === undefined) return `positive ${base}`;
  if (min !== undefined && max !== undefined) return `${base} ${String(min)}–${String(max)}`;
  if (min !== undefined) return `${base} ≥ ${String(min)}`;
  return base;
}

function defaultText(info: ReturnType<typeof unwrap>): string {
  if (info.defaultValue !== undefined) return `\`${JSON.stringify(info.defaultValue)}\``;
  return info.optional ? '—' : 'required';
}

const cell = (text: string): string => text.replace(/\n/g, ' ').replace(/(?<!\\)\|/g, '\\|');

function renderEnvOverrides(): string {
  const rows = ENV_OVERRIDES.map(
    (override) =>
      `| \`${override.variable}\` | \`${override.path}\` | ${override.kind === 'number' ? 'number' : override.kind === 'trustProxy' ? '`true`, `false`, a hop count, or a comma-separated list of addresses/CIDRs' : 'string'}${override.secret ? ' (secret: never printed)' : ''} |`,
  );
  return [
    '## Environment overrides',
    '',
    'These `GATEHOUSE_*` variables replace one setting each, after the file is read (an empty variable counts as unset).',
    'A `GATEHOUSE_*` variable not in this table is reported as a warning with the nearest name.',
    '`gatehouse start --port N` wins over both (`--port` is the only setting `start` takes as an option).',
    '',
    '| Variable | Setting | Value |',
    '|---|---|---|',
    ...rows,
    '',
    'Also read: `GATEHOUSE_CONFIG` (the config file when `--config` is not given) and `GATEHOUSE_DEBUG=1` (print stack',
    'traces of unexpected errors).',
    '',
  ].join('\n');
}

const INTRO = `<!-- Generated by scripts/gen-config-docs.ts from src/config/schema.ts. Do not edit by hand:
     change the schema's .describe() texts or the script, then run: node scripts/gen-config-docs.ts -->

# Configuration

Gatehouse reads one YAML file, \`gatehouse.yaml\` (\`gatehouse start --config FILE\`, or \`GATEHOUSE_CONFIG\`).
Without a file it runs the **local demo**: the gateway on port 8080 with a local identity provider (8081), the
sample Graph MCP server (8082) and a demo directory API (8083) — development components that never run in production.

- \`gatehouse init\` writes a commented production config and a key set with fresh keys.
- \`gatehouse config check FILE\` validates a file with the current environment, exactly as \`start\` would.

Settings are applied in this order, later ones winning:
1. the defaults below (and, with \`mode: demo\`, the demo configuration underneath the file);
2. the YAML file, with \`\${NAME}\` references replaced from the environment;
3. \`GATEHOUSE_*\` environment overrides;
4. command-line flags such as \`--port\`.

Every problem of the settings is reported at once, one line each, naming the setting and the fix; Gatehouse then
exits with code 2 and starts nothing. The checks run in stages, each on what the one before accepted, so a second run
may find more: \`\${NAME}\` references the environment lacks, then the settings themselves, then the files they name
(a key file, a private key) and the rules between settings:

\`\`\`
gatehouse: gatehouse.yaml: invalid configuration (3 problems):
  servr: unknown key — did you mean "server"?
  server.port (from GATEHOUSE_PORT): expected a number, got "abc"
  mode: must be one of "demo", "production" (got "prod") — did you mean "production"?
\`\`\`
`;

const HAND_WRITTEN = `## \`\${NAME}\` references

Any string value in the file may contain \`\${NAME}\`, replaced by the environment variable \`NAME\` when the file is
loaded — use this for every secret (\`clientSecret: \${ENTRA_CLIENT_SECRET}\`, \`redisUrl: \${REDIS_URL}\`,
\`metricsToken: \${METRICS_TOKEN}\`) so the file itself holds none. A variable that is not set is an error naming it.
Write \`$\${\` for a literal \`\${\`. Only values are expanded, never keys or comments. A value that is exactly one
reference (\`port: \${PORT}\`) becomes a number or boolean where the setting expects one. Values that came from the
environment are never printed in error messages.

## File paths

These settings name files: ${FILE_PATH_SETTINGS.map((setting) => `\`${setting}\``).join(', ')}. A relative path
written in the config file is relative to the directory of that file; one from an environment override or a default
is relative to the working directory.

## Production checks

With \`mode: production\` (the default when a file is given) Gatehouse also requires: \`server.publicUrl\` as an https
URL (plain http only for \`localhost\`/\`127.0.0.1\`, and then only with \`dev.insecureCookies: true\`: a browser drops
\`Secure\` cookies on http), \`upstream\` (with \`issuer\` for \`type: oidc\`,
\`entra.tenantId\` for \`type: entra\`), at least one route, and no \`dev.insecureCookies\` unless the public URL is
local. In every mode: route paths are unique and do not shadow Gatehouse's own endpoints, \`requiredScopes\` are among
the route's \`scopes\`, every \`downstream\`/\`identity.downstream\`/\`allowedDownstream\` name exists in
\`broker.downstream\`, \`store.redisUrl\` is set for \`store.type: redis\`, \`keys.file\` is readable for
\`keys.source: file\`, and no \`type: http\` route's backend covers an \`mcp\` route's backend or legacy SSE endpoint
(same server, and the HTTP route's base path a prefix of the MCP path): through it, the MCP server's tools would be
callable without that route's scopes, tool policies and \`tools/list\` filter. Point such a route at a base path that
holds no MCP endpoint (e.g. \`http://api:3001/api\`); \`routes[].allowMcpBackendOverlap: true\` accepts the overlap
with a warning (docs/security.md, "HTTP routes and MCP backends").

## Behind a load balancer

The OAuth issuer and every URL Gatehouse advertises (authorization server metadata, protected resource metadata,
\`WWW-Authenticate\` \`resource_metadata\`) are built from \`server.publicUrl\`, never from the request's \`Host\` header,
so a TLS-terminating load balancer or ingress in front of Gatehouse does not change them. Set \`server.publicUrl\` to
the https address clients use: the root of a host name of its own, without a path (Gatehouse serves its routes,
their metadata and the sign-in callback at the root, so a public URL with a path prefix is refused), and set \`server.trustProxy\` to the
load balancer's addresses or CIDRs (or the number of proxy hops) so client IPs in logs, rate limits and audit records
come from \`X-Forwarded-For\` — only from those proxies, since anyone else could forge the header. Leave it \`false\`
when clients connect to Gatehouse directly.
`;

if (import.meta.main) {
  const rendered = renderConfigurationDoc();
  if (process.argv.includes('--check')) {
    const current = readFileSync(CONFIGURATION_DOC_PATH, 'utf8');
    if (current !== rendered) {
      process.stderr.write('docs/configuration.md is out of date — run: node scripts/gen-config-docs.ts\n');
      process.exitCode = 1;
    }
  } else {
    writeFileSync(CONFIGURATION_DOC_PATH, rendered);
    process.stdout.write(`wrote ${CONFIGURATION_DOC_PATH}\n`);
  }
}
