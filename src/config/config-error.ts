import { GatehouseError } from '../errors/internal-errors.ts';
/**
 * A configuration that cannot be used. It carries every problem found (not just the first) as one-line texts that
 * name the field and the fix, e.g. `upstream.issuer: must be an https URL (got "htp://x")`. The CLI prints one line
 * per problem and exits with code 2; nothing is started. Problems never contain secret values.
 */
export class ConfigError extends GatehouseError {
  readonly problems: readonly string[];
  /** The file the problems are in, when there is one (for the heading the CLI prints). */
  readonly source: string | undefined;

  constructor(problems: readonly string[], source?: string) {
    super(
      'GH_CONFIG_INVALID',
      `${source ? `${source}: ` : ''}invalid configuration: ${problems.length === 1 ? problems[0] : `${problems.length} problems`}`,
    );
    this.name = 'ConfigError';
    this.problems = problems;
    this.source = source;
  }
}

export const isConfigError = (error: unknown): error is ConfigError => error instanceof ConfigError;
