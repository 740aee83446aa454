import { defaultAdminCommandDependencies, stringOption, type AdminCommandDependencies, type CliValues } from '../admin-command.ts';
import { checkBackends, checkKeys, checkStore, checkUpstream, configWarnings, reachByTcp, type DoctorCheck, type ReachBackend } from '../../admin/doctor.ts';
import { printable, toJsonOutput } from '../../admin/text-table.ts';
import { ConfigError } from '../../config/config-error.ts';
import { preflight } from '../../app/preflight.ts';
import { createSqliteStore } from '../../store/sqlite-store.ts';
import type { CliCommand, CliIo } from '../command.ts';

/**
 * `gatehouse doctor`: config, store, upstream discovery, backends and key health, one line each with the fix for
 * what is wrong. Exit code 1 when a check fails (warnings alone exit 0), so it can gate a deployment.
 */
export interface DoctorDependencies extends AdminCommandDependencies {
  fetch: typeof globalThis.fetch;
  reachBackend?: ReachBackend;
}

const marks: Record<DoctorCheck['status'], string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };

/**
 * One line per check, and one per fix. A detail may hold what a remote party said (the issuer a discovery document
 * names): printed escaped, a line break or an escape sequence in it cannot forge a check's line or drive the terminal.
 */
function print(io: CliIo, checks: DoctorCheck[]): void {
  for (const check of checks) {
    io.stdout(`[${marks[check.status]}] ${check.name.padEnd(8)} ${printable(check.detail)}\n`);
    if (check.fix !== undefined) io.stdout(`       ${' '.repeat(8)} → ${printable(check.fix)}\n`);
  }
}

async function runChecks(values: CliValues, io: CliIo, dependencies: DoctorDependencies): Promise<DoctorCheck[]> {
  const file = stringOption(values, 'config');
  let loaded;
  try {
    loaded = preflight({ file, env: io.env, cwd: io.cwd });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return [{ name: 'config', status: 'fail', detail: error.problems.join('; '), fix: 'fix the settings named above ("gatehouse config check" lists them)' }];
  }
  const { config, publicUrl } = loaded;
  const checks: DoctorCheck[] = [configWarnings(config, publicUrl, loaded.warnings)];
  const [{ check: storeCheck, store }, upstreamCheck, backendsCheck] = await Promise.all([
    checkStore(() => dependencies.openStore(config, io), config),
    checkUpstream(config, dependencies.fetch),
    checkBackends(config, dependencies.reachBackend ?? reachByTcp),
  ]);
  checks.push(storeCheck, upstreamCheck, backendsCheck);
  if (store === undefined && config.keys.source === 'file') {
    // Keys in a file are there before any store (`gatehouse init` writes them): checked from the file.
    const scratch = await createSqliteStore({ path: ':memory:', clock: dependencies.clock, purgeIntervalMs: 0 });
    try {
      checks.push(await checkKeys(scratch, config, dependencies.clock));
    } finally {
      await scratch.close().catch(() => {});
    }
    return checks;
  }
  if (store === undefined) {
    // A store not created yet holds no keys yet either: that is what a first start does, not a failure.
    checks.push(
      storeCheck.status === 'warn'
        ? { name: 'keys', status: 'warn', detail: 'not checked: there is no store yet', fix: 'they are created with the store when Gatehouse first starts' }
        : { name: 'keys', status: 'fail', detail: 'not checked: the store is unavailable', fix: 'fix the store first' },
    );
    return checks;
  }
  try {
    checks.push(await checkKeys(store, config, dependencies.clock));
  } finally {
    await store.close().catch(() => {});
  }
  return checks;
}

export function createDoctorCommand(dependencies: DoctorDependencies = { ...defaultAdminCommandDependencies, fetch: globalThis.fetch }): CliCommand {
  return {
    path: ['doctor'],
    summary: 'Check the configuration, store, upstream discovery, backends and keys, and say how to fix what is wrong.',
    options: {
      config: { type: 'string', short: 'c', description: 'Configuration file (default: $GATEHOUSE_CONFIG, else the local demo configuration).' },
      json: { type: 'boolean', description: 'Print JSON instead of text.' },
    },
    async run({ values, io }) {
      const checks = await runChecks(values, io, dependencies);
      if (values.json === true) io.stdout(toJsonOutput({ checks }));
      else print(io, checks);
      return checks.some((check) => check.status === 'fail') ? 1 : 0;
    },
  };
}

export const doctorCommand: CliCommand = createDoctorCommand();
