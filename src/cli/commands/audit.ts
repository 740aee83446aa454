import { adminCommand, defaultAdminCommandDependencies, printListing, stringOption, type AdminCommandDependencies, type CliValues } from '../admin-command.ts';
import { AUDIT_OUTCOMES, queryAudit, type AuditQuery } from '../../admin/audit-query.ts';
import { InvalidSinceError, parseSince } from '../../admin/since.ts';
import { formatTime } from '../../admin/text-table.ts';
import { CliUsageError, type CliCommand } from '../command.ts';

/** Without --since, --user or --tool, `audit tail` reads this far back (a range read; the audit log can be large). */
const DEFAULT_WINDOW_MS = 24 * 3_600_000;
const outcomes = AUDIT_OUTCOMES;

/** Validates the filters before the store is opened, so a typo is exit code 2 whatever state the store is in. */
export function auditQueryFrom(values: CliValues, now: number): AuditQuery {
  const since = stringOption(values, 'since');
  const limitText = stringOption(values, 'limit') ?? '50';
  const outcome = stringOption(values, 'outcome');
  if (!/^\d{1,5}$/.test(limitText) || Number(limitText) < 1) throw new CliUsageError(`--limit must be a number from 1 to 99999 (got ${JSON.stringify(limitText)})`);
  if (outcome !== undefined && !(outcomes as readonly string[]).includes(outcome)) {
    throw new CliUsageError(`--outcome must be one of ${outcomes.join(', ')} (got ${JSON.stringify(outcome)})`);
  }
  const user = stringOption(values, 'user');
  const tool = stringOption(values, 'tool');
  let sinceMs: number | undefined;
  try {
    sinceMs = since === undefined ? undefined : parseSince(since, now);
  } catch (error) {
    if (error instanceof InvalidSinceError) throw new CliUsageError(error.message);
    throw error;
  }
  if (sinceMs === undefined && user === undefined && tool === undefined) sinceMs = now - DEFAULT_WINDOW_MS;
  return {
    limit: Number(limitText),
    ...(user === undefined ? {} : { user }),
    ...(tool === undefined ? {} : { tool }),
    ...(outcome === undefined ? {} : { outcome: outcome as AuditQuery['outcome'] }),
    ...(sinceMs === undefined ? {} : { since: sinceMs }),
  };
}

/** `gatehouse audit tail`: the latest MCP requests from the audit log, newest first. */
export function createAuditCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): { tail: CliCommand } {
  const tail = adminCommand(dependencies, {
    path: ['audit', 'tail'],
    summary: 'Show the latest audited MCP requests (default: the last 24 h, 50 records), newest first.',
    options: {
      user: { type: 'string', short: 'u', description: 'Only requests of this user (subject).' },
      tool: { type: 'string', short: 't', description: 'Only calls of this tool.' },
      outcome: { type: 'string', description: `Only this outcome: ${AUDIT_OUTCOMES.join(', ')}.` },
      since: { type: 'string', short: 's', description: 'From this time: ISO 8601 (2026-05-01T10:00:00Z) or an age (15m, 2h, 7d).' },
      limit: { type: 'string', short: 'n', description: 'At most this many records (default 50).' },
    },
    prepare: (values) => auditQueryFrom(values, dependencies.clock.now()),
    action: async ({ deps, io, json, prepared: query }) =>
      printListing(io, json, {
        key: 'records',
        items: await queryAudit(deps.store, query),
        empty: 'No matching audit records.',
        headers: ['TIME', 'USER', 'CLIENT', 'ROUTE', 'METHOD', 'TOOL', 'OUTCOME', 'STATUS', 'DURATION'],
        row: (record) => [
          formatTime(record.time),
          record.user ?? '-',
          record.client ?? '-',
          record.route,
          record.method ?? '-',
          record.tool ?? '-',
          record.outcome,
          // 0: no answer was sent (the request was cut first).
          record.status === 0 ? '-' : String(record.status),
          `${record.durationMs}ms`,
        ],
      }),
  });
  return { tail };
}

export const auditTailCommand: CliCommand = createAuditCommands().tail;
