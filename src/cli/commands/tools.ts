import { commonOptions, defaultAdminCommandDependencies, withAdminStore, type AdminCommandDependencies } from '../admin-command.ts';
import { approveToolPin, diffToolPin, listToolPins, rejectToolPin, type ToolPinSummary } from '../../admin/tools.ts';
import { formatTable, formatTime, toJsonOutput } from '../../admin/text-table.ts';
import { CliUsageError, type CliCommand, type CliIo } from '../command.ts';

/** `gatehouse tools list|diff|approve|reject`: reviewing pinned tool definitions (a route's `toolPinning`). */
export function createToolsCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): {
  list: CliCommand;
  diff: CliCommand;
  approve: CliCommand;
  reject: CliCommand;
} {
  const list: CliCommand = {
    path: ['tools', 'list'],
    summary: 'List pinned tools (route, name, status: approved, changed, new, rejected), optionally of one route.',
    options: { ...commonOptions, route: { type: 'string', short: 'r', description: 'Only tools of this route path, e.g. /mcp.' } },
    run: ({ values, io }) =>
      withAdminStore(values, io, dependencies, async (deps) => {
        const tools = await listToolPins(deps, { route: typeof values.route === 'string' ? values.route : undefined });
        if (values.json === true) io.stdout(toJsonOutput({ tools }));
        else if (tools.length === 0) io.stdout('No tools pinned.\n');
        else {
          const rows = tools.map((tool) => [tool.route, tool.name, tool.status, formatTime(tool.changedAt)]);
          io.stdout(`${formatTable(['ROUTE', 'TOOL', 'STATUS', 'CHANGED'], rows)}\n`);
        }
        return 0;
      }),
  };

  const diff: CliCommand = {
    path: ['tools', 'diff'],
    summary: "Show a tool's approved and changed definitions, and which fields differ.",
    positionals: ['ROUTE', 'TOOL'],
    options: commonOptions,
    run: ({ values, positionals, io }) =>
      withAdminStore(values, io, dependencies, async (deps) => {
        const [route, tool] = routeAndTool(positionals);
        const result = await diffToolPin(deps, route, tool);
        if (values.json === true) io.stdout(toJsonOutput({ tool: result }));
        else {
          io.stdout(`${result.route} ${result.name}: ${result.status}\n`);
          if (result.changedFields.length > 0) io.stdout(`changed: ${result.changedFields.join(', ')}\n`);
          io.stdout(`--- approved\n${JSON.stringify(result.approved ?? null, null, 2)}\n+++ seen\n${JSON.stringify(result.pending ?? null, null, 2)}\n`);
        }
        return 0;
      }),
  };

  const decide = (verb: 'approve' | 'reject', summary: string, action: typeof approveToolPin): CliCommand => ({
    path: ['tools', verb],
    summary,
    positionals: ['ROUTE', 'TOOL'],
    options: commonOptions,
    run: ({ values, positionals, io }) =>
      withAdminStore(values, io, dependencies, async (deps) => {
        const [route, tool] = routeAndTool(positionals);
        report(io, values.json === true, verb, await action(deps, route, tool));
        return 0;
      }),
  });

  return {
    list,
    diff,
    approve: decide('approve', "Approve a tool's changed (or new) definition: every replica serves it at once.", approveToolPin),
    reject: decide('reject', "Reject a tool's changed definition: it stays refused, even with toolPinning: warn.", rejectToolPin),
  };
}

function routeAndTool(positionals: string[]): [string, string] {
  const [route, tool] = positionals;
  if (!route || !tool) throw new CliUsageError('expected a route path and a tool name, e.g. "gatehouse tools approve /mcp send_mail"');
  return [route, tool];
}

function report(io: CliIo, json: boolean, verb: string, tool: ToolPinSummary): void {
  if (json) io.stdout(toJsonOutput({ tool }));
  else io.stdout(`${verb === 'approve' ? 'Approved' : 'Rejected'}: ${tool.route} ${tool.name} (${tool.status}).\n`);
}

const commands = createToolsCommands();
export const toolsListCommand: CliCommand = commands.list;
export const toolsDiffCommand: CliCommand = commands.diff;
export const toolsApproveCommand: CliCommand = commands.approve;
export const toolsRejectCommand: CliCommand = commands.reject;
