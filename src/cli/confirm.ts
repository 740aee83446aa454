import { CliUsageError, type CliIo, type CliOption } from './command.ts';

/**
 * Confirmation for commands that cannot be undone (revoking a client or a grant, pruning keys). A script gets no
 * prompt it could hang on: without `--yes` and without a terminal on stdin the command refuses (exit 2) before it
 * opens the store, so a forgotten flag in a cron job changes nothing. On a terminal it asks, and only `y`/`yes`
 * proceeds.
 */
export const yesOption: CliOption = {
  type: 'boolean',
  short: 'y',
  description: 'Do it without asking (required when stdin is not a terminal).',
};

export type Confirm = (question: string) => Promise<boolean>;

/** Call first in the command's run: refuses a non-interactive run without --yes, else returns the asker. */
export function confirmation(values: Record<string, unknown>, io: CliIo, command: string): Confirm {
  if (values['yes'] === true) return async () => true;
  const ask = io.ask;
  if (io.stdinIsTTY !== true || ask === undefined) {
    throw new CliUsageError(`"gatehouse ${command}" cannot be undone and stdin is not a terminal to confirm it: pass --yes`);
  }
  return async (question) => /^\s*y(es)?\s*$/i.test(await ask(`${question} [y/N] `));
}

/** Message and exit code when the operator answers no: nothing changed, which is not a success for a script. */
export function cancelled(io: CliIo): number {
  io.stderr('Cancelled: nothing changed.\n');
  return 1;
}
