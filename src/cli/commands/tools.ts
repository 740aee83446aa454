import { adminCommand, defaultAdminCommandDependencies, printListing, stringOption, type AdminCommandDependencies } from '../admin-command.ts';
import { approveToolPin, diffToolPin, listToolPins, rejectToolPin, type ToolPinSummary } from '../../admin/tools.ts';
import { formatTime, printable, terminalSafe, toJsonOutput } from '../../admin/text-table.ts';
import { foldToolName } from '../../protocol/tool-names.ts';
import type { AdminDeps } from '../../admin/admin-deps.ts';
import { CliUsageError, type CliCommand, type CliIo } from '../command.ts';

/** `gatehouse tools list|diff|approve|reject`: reviewing pinned tool definitions (a route's `toolPinning`). */
export function createToolsCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): Record<'list' | 'diff' | 'approve' | 'reject', CliCommand> {
  const list = adminCommand(dependencies, {
    path: ['tools', 'list'],
    summary: 'List pinned tools (route, name, status: approved, changed, new, rejected), optionally of one route.',
    options: { route: { type: 'string', short: 'r', description: 'Only tools of this route path, e.g. /mcp.' } },
    action: async ({ deps, values, io, json }) =>
      printListing(io, json, {
        key: 'tools',
        items: await listToolPins(deps, { route: stringOption(values, 'route') }),
        empty: 'No tools pinned.',
        headers: ['ROUTE', 'TOOL', 'STATUS', 'CHANGED'],
        row: (tool) => [tool.route, tool.name, tool.status, formatTime(tool.changedAt)],
      }),
  });

  const diff = adminCommand(dependencies, {
    path: ['tools', 'diff'],
    summary: "Show a tool's approved and changed definitions, and which fields differ.",
    positionals: ['ROUTE', 'TOOL'],
    options: { hash: pickByHash },
    action: async ({ deps, positionals, values, io, json }) => {
      const [route, given] = routeAndTool(positionals);
      const result = await diffToolPin(deps, route, await pinnedToolMeant(deps, route, given, stringOption(values, 'hash')));
      if (json) return void io.stdout(toJsonOutput({ tool: result }));
      // Everything here is what a backend published: each invisible character (zero-width, tag characters, bidi
      // overrides, which JSON leaves as they are) is printed as its code point, as the console marks it.
      // The name by its printed form (which TOOL accepts): a line break in it would print a line of the backend's.
      const lines = [`${result.route} ${printable(result.name)}: ${result.status}`];
      if (result.changedFields.length > 0) lines.push(`changed: ${result.changedFields.join(', ')}`);
      // The approval of exactly this definition, quoted for a shell: refused if the backend changes it before it runs.
      if (result.pendingHash !== undefined) lines.push(`approve exactly this: gatehouse tools approve ${shellQuoted(result.route)} ${shellQuoted(printable(result.name))} --hash ${result.pendingHash}`);
      lines.push('--- approved', result.approved === undefined ? '(nothing approved yet)' : JSON.stringify(result.approved, null, 2));
      lines.push('+++ seen', result.pending === undefined ? '(the approved definition: nothing awaits review)' : JSON.stringify(result.pending, null, 2));
      io.stdout(`${terminalSafe(lines.join('\n'))}\n`);
    },
  });

  const decide = (verb: 'approve' | 'reject', summary: string, decision: typeof approveToolPin): CliCommand =>
    adminCommand(dependencies, {
      path: ['tools', verb],
      summary,
      positionals: ['ROUTE', 'TOOL'],
      options: {
        hash:
          verb === 'approve'
            ? { type: 'string' as const, description: 'Approve only this definition (the hash `tools diff` prints): refused if it changed since.' }
            : pickByHash,
      },
      action: async ({ deps, positionals, values, io, json }) => {
        const [route, given] = routeAndTool(positionals);
        const hash = stringOption(values, 'hash');
        // A rejection refuses whatever is pending (the safe side): its --hash only picks the tool.
        report(io, json, verb, await decision(deps, route, await pinnedToolMeant(deps, route, given, hash), 'cli', verb === 'approve' ? hash : undefined));
      },
    });

  return {
    list,
    diff,
    approve: decide('approve', "Approve a tool's changed (or new) definition: every replica serves it at once.", approveToolPin),
    reject: decide('reject', "Reject a tool's changed definition: it stays refused, even with toolPinning: warn.", rejectToolPin),
  };
}

/** `--hash` of `tools diff` and `tools reject`: which tool, when TOOL as printed names two. */
const pickByHash = { type: 'string' as const, description: 'The tool whose changed definition has this hash, when TOOL as printed names two.' };

function routeAndTool(positionals: string[]): [string, string] {
  const [route, tool] = positionals;
  if (!route || !tool) throw new CliUsageError('expected a route path and a tool name, e.g. "gatehouse tools approve /mcp send_mail"');
  return [route, tool];
}

/**
 * The pinned tool an operator names: by its name, or by the text `tools list` prints for it. A backend's name may hold
 * what argv cannot carry (U+0000) or a terminal does not show (controls, invisible characters, a lone surrogate);
 * `tools list` prints each as its code point (`brand_new\x00nul`), and that text named no tool, so such a change
 * could not be decided. Two tools that answer to the same text (`\x00` is also four characters a name may hold) are
 * told apart by `--hash`, or refused: a decision must not fall on a tool the operator did not mean.
 */
async function pinnedToolMeant(deps: AdminDeps, route: string, given: string, hash?: string): Promise<string> {
  const pins = await listToolPins(deps, { route });
  const meant = pins.filter((tool) => foldToolName(tool.name) === foldToolName(given) || printable(tool.name) === given);
  const chosen = meant.length > 1 && hash !== undefined ? meant.filter((tool) => tool.pendingHash === hash) : meant;
  if (chosen.length > 1) {
    throw new CliUsageError(`"${given}" names ${chosen.length} tools on ${route} as "gatehouse tools list" prints them: pick one with --hash (each one's pendingHash in "gatehouse tools list --json"), or decide in the admin console.`);
  }
  // None: the name goes on as given, for the store's own "No tool … is pinned".
  return chosen[0]?.name ?? given;
}

function report(io: CliIo, json: boolean, verb: string, tool: ToolPinSummary): void {
  if (json) io.stdout(toJsonOutput({ tool }));
  else io.stdout(`${terminalSafe(`${verb === 'approve' ? 'Approved' : 'Rejected'}: ${tool.route} ${printable(tool.name)} (${tool.status}).`)}\n`);
}

/** A word for a POSIX shell: single-quoted (a backend names its tools; `x;curl …|sh` is a name too). */
function shellQuoted(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

const commands = createToolsCommands();
export const toolsListCommand: CliCommand = commands.list;
export const toolsDiffCommand: CliCommand = commands.diff;
export const toolsApproveCommand: CliCommand = commands.approve;
export const toolsRejectCommand: CliCommand = commands.reject;
