import { isAbsolute } from 'node:path';
import { pino } from 'pino';
import type { CliCommand, CliIo, CliOption } from './command.ts';
import { loadConfig } from '../config/load.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import { systemClock, type Clock } from '../runtime/clock.ts';
import { openStore } from '../store/open-store.ts';
import { indexGrantsWrittenBefore } from '../store/oidc-index-backfill.ts';
import { StoreUnavailableError, type Store } from '../store/store.ts';
import type { AdminDeps } from '../admin/admin-deps.ts';
import { formatTable, terminalSafe, toJsonOutput } from '../admin/text-table.ts';
import { GatehouseError } from '../errors/internal-errors.ts';
import { auditGrantEnds } from '../authorization/grant-end-audit.ts';
import { protectedResources } from '../authorization/protected-resources.ts';
import { resolvePublicUrl } from '../config/public-url.ts';
import { createEndGrant } from '../grants/end-grant.ts';
import { createAuditLog } from '../proxy/audit.ts';
import { cryptoRandom } from '../runtime/random.ts';

/**
 * The frame every admin CLI command runs in: load the config (`--config FILE`, else the demo defaults), open the
 * store it names, run, close. An unreachable store becomes one line naming it and exit code 1 — never a stack trace,
 * and never a hang (the Redis client fails fast, see src/store/redis-connection.ts).
 */
export interface AdminCommandDependencies {
  clock: Clock;
  /** Opens the store the config names; tests pass one over a temporary database. */
  openStore: (config: GatehouseConfig, io: CliIo) => Promise<Store>;
}

/** Warnings (a Redis reconnect, audit records the store refused) go to stderr; stdout stays the command's output. */
const warningsTo = (io: CliIo) => pino({ level: 'warn' }, { write: (line: string) => io.stderr(line) });

export const defaultAdminCommandDependencies: AdminCommandDependencies = {
  clock: systemClock,
  openStore: (config, io) =>
    openStore(config.store, {
      clock: systemClock,
      mustExist: true,
      logger: warningsTo(io),
    }),
};

export type CliValues = Record<string, string | boolean | string[] | undefined>;

export class StoreUnreachableError extends GatehouseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GH_STORE_UNREACHABLE', message, options);
    this.name = 'StoreUnreachableError';
  }
}

const storeProblem = (error: StoreUnavailableError): StoreUnreachableError =>
  new StoreUnreachableError(`store unavailable: ${error.message.split('\n')[0]}`, { cause: error });

/**
 * The demo registers clients at start (the sample server's, the enterprise and workload demos'): the console lists
 * them, and so must the CLI, which reads the configuration rather than the running demo. Outside the demo, as read.
 */
async function withDemoRegistrations(config: GatehouseConfig): Promise<{ config: GatehouseConfig; demoClients: ReadonlySet<string> }> {
  const none = { config, demoClients: new Set<string>() };
  if (config.mode !== 'demo') return none;
  const { demoRegistrations, withDemoSettings } = await import('../demo/demo-registrations.ts');
  const registrations = demoRegistrations(config);
  if (registrations === undefined) return none;
  const added = [registrations.backendClient, registrations.enterpriseClient, registrations.workloadTrust?.client];
  return { config: withDemoSettings(config, registrations), demoClients: new Set(added.flatMap((client) => (client === undefined ? [] : [client.clientId]))) };
}

export async function withAdminStore<T>(
  values: CliValues,
  io: CliIo,
  dependencies: AdminCommandDependencies,
  action: (deps: AdminDeps) => Promise<T>,
): Promise<T> {
  const file = typeof values['config'] === 'string' ? values['config'] : undefined;
  const { config, demoClients } = await withDemoRegistrations(loadConfig({ file, env: io.env, cwd: io.cwd }).config);
  let store: Store;
  try {
    store = await dependencies.openStore(config, io);
  } catch (error) {
    if (error instanceof StoreUnavailableError) throw storeProblem(error);
    throw error;
  }
  const { clock } = dependencies;
  // Grants the command ends are audit records, as the running gateway's are (src/authorization/grant-end-audit.ts):
  // in the store, and appended to the audit file when `audit.output` names one by an absolute path (the gateway's
  // stdout is not this process's, and a relative path is the gateway's working directory's, which is not known here).
  // A record the store refused is said so on stderr, not left to a warning line.
  const audit = createAuditLog({
    store,
    random: cryptoRandom,
    logger: warningsTo(io),
    output: isAbsolute(config.audit.output) ? config.audit.output : 'store',
    retentionDays: config.audit.retentionDays,
    onDropped: (count) => io.stderr(`audit: ${count} record(s) of what this command did could not be stored (the store is unavailable)\n`),
  });
  const endGrant = createEndGrant({
    store,
    clock,
    accessTokenTtlSeconds: config.authorization.accessTokenTtlSeconds,
    grantLifetimeSeconds: config.authorization.refreshTokenAbsoluteSeconds,
    onEnded: auditGrantEnds(protectedResources(resolvePublicUrl(config), config.routes), clock, (entry) => audit.record(entry)),
  });
  try {
    // The CLI may be the first of an upgrade's code to open this store: the grant listings read their indexes.
    await indexGrantsWrittenBefore(store);
    return await action({ store, clock, config, endGrant, demoClients });
  } catch (error) {
    if (error instanceof StoreUnavailableError) throw storeProblem(error);
    throw error;
  } finally {
    await audit.close().catch(() => {});
    await store.close().catch(() => {});
  }
}

export const stringOption = (values: CliValues, name: string): string | undefined => {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
};

export const commonOptions = {
  config: { type: 'string', short: 'c', description: 'Configuration file (default: $GATEHOUSE_CONFIG, else the local demo configuration).' },
  json: { type: 'boolean', description: 'Print JSON instead of a table.' },
} as const;

export interface AdminCommandInput {
  deps: AdminDeps;
  values: CliValues;
  positionals: string[];
  io: CliIo;
  json: boolean;
}

export interface AdminCommandSpec<Prepared> {
  path: string[];
  summary: string;
  positionals?: string[];
  /** Options besides `--config` and `--json`, which every admin command takes. */
  options?: Record<string, CliOption>;
  /**
   * Reads the arguments before the store is opened, so a typo (or a destructive command run off a terminal without
   * `--yes`) is exit code 2 whatever state the store is in.
   */
  prepare?: (values: CliValues, io: CliIo) => Prepared;
  /** Exit code 0 when it returns nothing; a number is the exit code (1: the operator cancelled). */
  action: (input: AdminCommandInput & { prepared: Prepared }) => Promise<void | number>;
}

/** An admin command: the common options, its action run inside `withAdminStore`, exit code 0 unless it says otherwise. */
export function adminCommand<Prepared = undefined>(dependencies: AdminCommandDependencies, spec: AdminCommandSpec<Prepared>): CliCommand {
  const { action, prepare, options, ...described } = spec;
  return {
    ...described,
    options: { ...commonOptions, ...options },
    run: async ({ values, positionals, io: terminal }) => {
      const json = values['json'] === true;
      const io = json ? terminal : forReading(terminal);
      // Without `prepare`, Prepared is `undefined` (its default).
      const prepared = prepare?.(values, io) as Prepared;
      return withAdminStore(values, io, dependencies, async (deps) => (await action({ deps, values, positionals, io, json, prepared })) ?? 0);
    },
  };
}

/**
 * The terminal a person reads: every line written and every question asked shows stored values' control and bidi
 * characters escaped (terminalSafe), whichever command printed them. `--json` output is left exact for scripts (JSON
 * escapes the C0 controls itself).
 */
function forReading(io: CliIo): CliIo {
  const { ask } = io;
  return {
    ...io,
    stdout: (text) => io.stdout(terminalSafe(text)),
    stderr: (text) => io.stderr(terminalSafe(text)),
    ...(ask === undefined ? {} : { ask: (question: string) => ask(terminalSafe(question)) }),
  };
}

export interface Listing<T> {
  /** The JSON property the items are printed under. */
  key: string;
  items: readonly T[];
  /** The line printed when there are no items. */
  empty: string;
  headers: string[];
  row: (item: T) => string[];
}

/** The `list` commands' output: the items as JSON, one line when there are none, else a table. */
export function printListing<T>(io: CliIo, json: boolean, listing: Listing<T>): void {
  if (json) io.stdout(toJsonOutput({ [listing.key]: listing.items }));
  else if (listing.items.length === 0) io.stdout(`${listing.empty}\n`);
  else io.stdout(`${formatTable(listing.headers, listing.items.map(listing.row))}\n`);
}
