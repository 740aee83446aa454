import { terminalSafe } from '../admin/text-table.ts';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/config-error.ts';
import { nearest } from '../config/nearest.ts';
import { CliUsageError, type CliCommand, type CliIo } from './command.ts';
import { commands as allCommands } from './commands/index.ts';
import { gatehouseVersion } from './version.ts';

/**
 * The `gatehouse` command line: picks the command from the leading words of argv, parses its options strictly
 * (node:util parseArgs), prints help, and turns errors into exit codes — 2 with one line per problem for usage and
 * configuration mistakes, 1 with one line for failures. Never a stack trace unless GATEHOUSE_DEBUG=1, because a
 * stack trace hides the one line that says what to fix.
 */

type Values = Record<string, string | boolean | string[] | undefined>;

export async function runCli(argv: readonly string[], io: CliIo, commands: readonly CliCommand[] = allCommands): Promise<number> {
  try {
    return await dispatch(argv, io, commands);
  } catch (error) {
    return reportError(error, io);
  }
}

async function dispatch(argv: readonly string[], io: CliIo, commands: readonly CliCommand[]): Promise<number> {
  const words: string[] = [];
  for (const token of argv) {
    if (token.startsWith('-')) break;
    words.push(token);
  }
  if (words.length === 0 && argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
    io.stdout(`gatehouse ${gatehouseVersion()}\n`);
    return 0;
  }
  if (words[0] === 'help') {
    return dispatch([...words.slice(1), '--help'], io, commands);
  }
  const command = findCommand(words, commands);
  const wantsHelp = argv.includes('--help') || argv.includes('-h');
  if (!command) {
    const group = commands.filter((candidate) => words.length > 0 && startsWith(candidate.path, words));
    if (words.length === 0 || group.length > 0) {
      const listed = group.length > 0 ? group : commands;
      if (wantsHelp || words.length === 0) {
        io.stdout(overview(listed, group.length > 0 ? words.join(' ') : undefined));
        return 0;
      }
      throw new CliUsageError(`"${words.join(' ')}" needs a subcommand: ${group.map((c) => c.path.at(-1)).join(', ')}`);
    }
    // `gatehouse keys frob`: the group is known, its subcommand is not (this said `unknown command "keys"`).
    const family = commands.filter((candidate) => candidate.path.length > 1 && candidate.path[0] === words[0]);
    if (family.length > 0 && words.length > 1) {
      const subcommands = family.map((c) => c.path[1] ?? '');
      const near = nearest(words[1] ?? '', subcommands);
      throw new CliUsageError(
        `unknown subcommand "${words[1]}" of "gatehouse ${words[0]}" (it has ${subcommands.join(', ')})${near ? ` — did you mean "gatehouse ${words[0]} ${near}"?` : ''}`,
      );
    }
    const typed = words.slice(0, 2).join(' ');
    const names = [...new Set(commands.flatMap((c) => [c.path.join(' '), c.path[0] ?? '']))];
    const suggestion = nearest(typed, names) ?? nearest(words[0] ?? '', names);
    throw new CliUsageError(
      `unknown command "${words[0]}"${suggestion ? ` — did you mean "gatehouse ${suggestion}"?` : '.'} Run "gatehouse --help" for the list.`,
    );
  }
  if (wantsHelp) {
    io.stdout(commandHelp(command));
    return 0;
  }
  const { values, positionals } = parseCommandLine(command, argv.slice(command.path.length));
  return command.run({ values, positionals, io });
}

function findCommand(words: readonly string[], commands: readonly CliCommand[]): CliCommand | undefined {
  return [...commands]
    .sort((a, b) => b.path.length - a.path.length)
    .find((command) => startsWith(words, command.path));
}

const startsWith = (list: readonly string[], prefix: readonly string[]): boolean =>
  prefix.length <= list.length && prefix.every((word, index) => list[index] === word);

/** Strict option parsing with our own messages (parseArgs' own mention quoting rules rather than the fix). */
function parseCommandLine(command: CliCommand, args: readonly string[]): { values: Values; positionals: string[] } {
  const options = command.options ?? {};
  const name = command.path.join(' ');
  const { values, positionals, tokens } = parseArgs({
    args: [...args],
    options: Object.fromEntries(Object.entries(options).map(([key, option]) => [key, withoutDescription(option)])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const option = options[token.name];
    if (!option) {
      const suggestion = nearest(token.name, Object.keys(options));
      // A single-dash word where the command takes an argument may be a value that starts with "-" (a key id made
      // before ids avoided it): `--` ends the options, as in every POSIX command line.
      const value = !suggestion && token.rawName.length === 2 && (command.positionals ?? []).length > 0 ? args[token.index] : undefined;
      const hint = suggestion ? ` — did you mean "--${suggestion}"?` : value !== undefined ? ` — for an argument that starts with "-", put "--" before it, after the options: gatehouse ${name} [options] -- ${value}` : '';
      throw new CliUsageError(`unknown option "${token.rawName}" for "gatehouse ${name}"${hint}`);
    }
    if (option.type === 'string' && token.value === undefined) {
      throw new CliUsageError(`option "${token.rawName}" needs a value, e.g. ${token.rawName} VALUE`);
    }
    // `--user --config f` took "--config" as the user: a separate value that is itself an option is a forgotten value.
    if (option.type === 'string' && token.inlineValue === false && token.value?.startsWith('--') === true) {
      throw new CliUsageError(`option "${token.rawName}" needs a value, not the option "${token.value}" (write ${token.rawName}=${token.value} if that is the value)`);
    }
    if (option.type === 'boolean' && token.inlineValue) {
      throw new CliUsageError(`option "${token.rawName}" takes no value`);
    }
  }
  const declared = command.positionals ?? [];
  const required = declared.filter((positional) => !positional.startsWith('[') && !positional.endsWith('...'));
  const variadic = declared.some((positional) => positional.endsWith('...'));
  if (positionals.length < required.length) {
    throw new CliUsageError(`missing ${required.slice(positionals.length).join(' ')} — usage: ${usageLine(command)}`);
  }
  if (!variadic && positionals.length > declared.length) {
    throw new CliUsageError(`unexpected argument "${positionals[declared.length]}" — usage: ${usageLine(command)}`);
  }
  return { values: { ...values } as Values, positionals };
}

function withoutDescription(option: NonNullable<CliCommand['options']>[string]) {
  const { type, short, multiple } = option;
  return { type, ...(short ? { short } : {}), ...(multiple ? { multiple } : {}) };
}

function usageLine(command: CliCommand): string {
  const options = Object.keys(command.options ?? {}).length > 0 ? ' [options]' : '';
  return ['gatehouse', ...command.path, ...(command.positionals ?? [])].join(' ') + options;
}

export function commandHelp(command: CliCommand): string {
  const lines = [`Usage: ${usageLine(command)}`, '', command.summary, ''];
  const entries = Object.entries(command.options ?? {}).map(([key, option]) => {
    const flag = `${option.short ? `-${option.short}, ` : '    '}--${key}${option.type === 'string' ? ' VALUE' : ''}`;
    return [flag, option.description] as const;
  });
  entries.push(['-h, --help', 'Show this help.']);
  const width = Math.max(...entries.map(([flag]) => flag.length));
  lines.push('Options:', ...entries.map(([flag, description]) => `  ${flag.padEnd(width)}  ${description}`));
  return `${lines.join('\n')}\n`;
}

export function overview(commands: readonly CliCommand[], group?: string): string {
  const rows = commands.map((command) => [[...command.path, ...(command.positionals ?? [])].join(' '), command.summary] as const);
  const width = Math.max(0, ...rows.map(([usage]) => usage.length));
  return [
    group ? `Usage: gatehouse ${group} <subcommand> [options]` : 'Usage: gatehouse <command> [options]',
    '',
    'Gatehouse: OAuth 2.1 in front of remote MCP servers. Without a config file it runs the local demo.',
    '',
    'Commands:',
    ...rows.map(([usage, summary]) => `  ${usage.padEnd(width)}  ${summary}`),
    '',
    'Run "gatehouse <command> --help" for the options of a command, "gatehouse --version" for the version.',
    '',
  ].join('\n');
}

function reportError(error: unknown, io: CliIo): number {
  const debug = io.env.GATEHOUSE_DEBUG === '1';
  if (error instanceof ConfigError) {
    const count = error.problems.length;
    // Problems quote the file (an unknown key as written): a control character in it must not drive the terminal.
    io.stderr(terminalSafe(`gatehouse: ${error.source ? `${error.source}: ` : ''}invalid configuration (${count} problem${count === 1 ? '' : 's'}):\n`));
    for (const problem of error.problems) io.stderr(`  ${terminalSafe(problem)}\n`);
    return 2;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.stderr(`gatehouse: ${terminalSafe(message.split('\n')[0] ?? '')}\n`);
  if (debug && error instanceof Error && error.stack) io.stderr(`${error.stack}\n`);
  if (error instanceof CliUsageError) return 2;
  // Other parts may throw their own errors with an exit code (e.g. "port 8080 is in use" is a usage error: 2).
  const code = (error as { exitCode?: unknown } | null)?.exitCode;
  return code === 2 ? 2 : 1;
}

/** The question goes to stderr so that stdout stays the command's output (e.g. --json piped to a file). */
async function askOnTerminal(question: string): Promise<string> {
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await prompt.question(question);
  } finally {
    prompt.close();
  }
}

/** Runs the CLI for this process: what bin/gatehouse.js and `npm start` call. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  const io: CliIo = {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
    stdoutIsTTY: process.stdout.isTTY === true,
    stdinIsTTY: process.stdin.isTTY === true,
    ask: askOnTerminal,
  };
  quietOnClosedPipe(argv[0] === 'start');
  const code = await runCli(argv, io);
  process.exitCode = code;
  return code;
}

/**
 * A reader that stops reading (`gatehouse clients list | head -3`) closes the pipe, and the next write fails with
 * EPIPE, which nothing handled: a stack trace after the lines the user asked for. A command's output then has nowhere
 * to go, so it ends there, quietly, as Unix tools do. The gateway (`start`) keeps serving: its stdout reader going
 * away must not take the MCP traffic down with it. Its log has a stream of its own (pino's, which drops what it cannot
 * write); what `process.stdout` carries there — audit lines with `audit.output: stdout`; the audit trail is in the
 * store too — is lost from then on, which stderr says once.
 */
function quietOnClosedPipe(longRunning: boolean): void {
  let told = false;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    if (!longRunning) process.exit(process.exitCode ?? 0);
    if (!told) process.stderr.write('gatehouse: standard output was closed; audit lines written there are lost until restart\n');
    told = true;
  });
}

if (import.meta.main) await main();
