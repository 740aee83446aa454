import { preflight } from '../../app/preflight.ts';
import type { GatehouseConfig } from '../../config/schema.ts';
import { toJsonOutput } from '../../admin/text-table.ts';
import { ConfigError } from '../../config/config-error.ts';
import type { CliCommand, CliIo } from '../command.ts';

/**
 * `gatehouse config check FILE`: validates a config file exactly as `start` would (the same preflight: `${ENV}`
 * expansion, `GATEHOUSE_*` overrides, rules, key files) without starting anything — for CI pipelines and before a rollout.
 */
export const configCheckCommand: CliCommand = {
  path: ['config', 'check'],
  summary: 'Validate a config file (with the current environment) and print a summary, or every problem found.',
  positionals: ['FILE'],
  options: {
    json: { type: 'boolean', description: 'Print one JSON object ({ok, summary, warnings} or {ok, file, problems}); same exit codes.' },
  },
  async run({ values, positionals, io }) {
    const file = positionals[0] as string;
    if (values.json === true) return checkAsJson(file, io);
    const loaded = preflight({ file, env: io.env, cwd: io.cwd });
    for (const warning of loaded.warnings) io.stderr(`warning: ${warning}\n`);
    io.stdout(`ok: ${summarize(loaded.config, loaded.publicUrl)}\n`);
    return 0;
  },
};

/**
 * For CI and deployment tools: the same preflight, its verdict on stdout as JSON whatever it is, so a pipeline reads
 * one document instead of parsing stderr. Only configuration problems become JSON (exit 2); anything else is a
 * failure of the check itself and keeps the CLI's one-line error (exit 1).
 */
function checkAsJson(file: string, io: CliIo): number {
  try {
    const loaded = preflight({ file, env: io.env, cwd: io.cwd });
    io.stdout(toJsonOutput({ ok: true, summary: summarize(loaded.config, loaded.publicUrl), warnings: loaded.warnings }));
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stdout(toJsonOutput({ ok: false, file: error.source ?? file, problems: error.problems }));
    return 2;
  }
}

/** One line: what would run. Nothing secret (no URLs with credentials, no client ids of secrets). */
export function summarize(config: GatehouseConfig, publicUrl: string): string {
  const upstream = config.upstream
    ? `upstream ${config.upstream.type}${config.upstream.type === 'entra' ? ` (tenant ${config.upstream.entra?.tenantId ?? '?'})` : ''}`
    : 'no upstream';
  const routes = config.routes.length === 0 ? 'no routes' : `${config.routes.length} route${config.routes.length === 1 ? '' : 's'} (${config.routes.map((route) => route.path).join(', ')})`;
  return `mode ${config.mode}, issuer ${publicUrl}, store ${config.store.type}, keys from ${config.keys.source}, ${upstream}, ${routes}`;
}
