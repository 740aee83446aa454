import { GatehouseError } from '../errors/internal-errors.ts';
import type { AppIo } from '../app/start-gateway.ts';
/**
 * The shape of every `gatehouse` command. Commands are plain objects in src/cli/commands/, listed in
 * src/cli/commands/index.ts; src/cli/main.ts parses argv (node:util parseArgs), prints `--help` from these fields,
 * and maps errors to exit codes (2 for configuration and usage errors, 1 for failures), never a stack trace.
 */
export interface CliOption {
  type: 'string' | 'boolean';
  short?: string;
  description: string;
  multiple?: boolean;
}

/** Where a command prints and what environment it reads: the app's (`start` hands it on), plus the terminal. */
export interface CliIo extends AppIo {
  /** Whether stdin is a terminal, so a destructive command may ask before acting (see confirm.ts). */
  stdinIsTTY?: boolean;
  /** Asks one question on the terminal and resolves with the answer line. */
  ask?: (question: string) => Promise<string>;
}

export interface CliCommand {
  /** Words that select the command, e.g. `['keys', 'rotate']`. */
  path: string[];
  summary: string;
  /** Positional arguments, for the usage line, e.g. `['FILE']`. */
  positionals?: string[];
  options?: Record<string, CliOption>;
  /** Returns the process exit code. Long-running commands (start) resolve when the server stops. */
  run(input: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[]; io: CliIo }): Promise<number>;
}

/** A usage or configuration mistake: printed as one line, exit code 2. */
export class CliUsageError extends GatehouseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GH_USAGE', message, options);
    this.name = 'CliUsageError';
  }
}
