import { preflight } from '../../app/preflight.ts';
import type { GatehouseConfig } from '../../config/schema.ts';
import type { CliCommand } from '../command.ts';

/**
 * `gatehouse config check FILE`: validates a config file exactly as `start` would (the same preflight: `${ENV}`
 * expansion, `GATEHOUSE_*` overrides, rules, key files) without starting anything — for CI pipelines and before a rollout.
 */
export const configCheckCommand: CliCommand = {
  path: ['config', 'check'],
  summary: 'Validate a config file (with the current environment) and print a summary, or every problem found.',
  positionals: ['FILE'],
  options: {},
  async run({ positionals, io }) {
    const loaded = preflight({ file: positionals[0] as string, env: io.env, cwd: io.cwd });
    for (const warning of loaded.warnings) io.stderr(`warning: ${warning}\n`);
    io.stdout(`ok: ${summarize(loaded.config, loaded.publicUrl)}\n`);
    return 0;
  },
};

/** One line: what would run. Nothing secret (no URLs with credentials, no client ids of secrets). */
export function summarize(config: GatehouseConfig, publicUrl: string): string {
  const upstream = config.upstream
    ? `upstream ${config.upstream.type}${config.upstream.type === 'entra' ? ` (tenant ${config.upstream.entra?.tenantId ?? '?'})` : ''}`
    : 'no upstream';
  const routes = config.routes.length === 0 ? 'no routes' : `${config.routes.length} route${config.routes.length === 1 ? '' : 's'} (${config.routes.map((route) => route.path).join(', ')})`;
  return `mode ${config.mode}, issuer ${publicUrl}, store ${config.store.type}, keys from ${config.keys.source}, ${upstream}, ${routes}`;
}
