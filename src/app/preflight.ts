import { readOperatorFileSync } from '../config/operator-file.ts';
import { ConfigError } from '../config/config-error.ts';
import { loadConfig, type LoadConfigOptions, type LoadedConfig } from '../config/load.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import { KeySetError, parseKeySet } from '../keys/key-set.ts';
import { systemClock } from '../runtime/clock.ts';
import { cryptoRandom } from '../runtime/random.ts';
import { upstreamConfigProblems } from '../upstream/config-problems.ts';

/**
 * Everything about the configuration that `start` can refuse, checked without opening the store or a port:
 * `gatehouse start`, `config check` and `doctor` all call this, so a file one of them accepts is never refused by
 * another (test/cli/start-refusals.test.ts runs every refusal through all three). Each refusal is a ConfigError,
 * which the CLI prints one problem a line with exit code 2 — a code systemd's `RestartPreventExitStatus=2` keeps from
 * restarting in a loop. Steps, in order: load (schema and cross-field rules, cookies included) → upstream pieces
 * (client authentication and its key files, the Entra/OIDC profile) → the key set file.
 */
export function preflight(options: LoadConfigOptions): LoadedConfig {
  const loaded = loadConfig(options);
  const problems = [...checkUpstream(loaded.config, options.env), ...checkKeySetFile(loaded.config)];
  if (problems.length > 0) throw new ConfigError(problems, options.file ?? (options.env.GATEHOUSE_CONFIG || undefined));
  return loaded;
}

function checkUpstream(config: GatehouseConfig, env: NodeJS.ProcessEnv): string[] {
  if (!config.upstream) return [];
  return upstreamConfigProblems(config.upstream, { clock: systemClock, random: cryptoRandom, env });
}

/** `keys.source: file`: the file must hold a usable key set, as the keyring loaded at start requires. */
function checkKeySetFile(config: GatehouseConfig): string[] {
  const file = config.keys.file;
  if (config.keys.source !== 'file' || !file) return [];
  let text: string;
  try {
    text = readOperatorFileSync(file);
  } catch {
    return []; // an unreadable file is already a problem from the config rules
  }
  try {
    parseKeySet(text, `keys.file: "${file}"`);
    return [];
  } catch (error) {
    if (error instanceof KeySetError) return [error.message];
    throw error;
  }
}
