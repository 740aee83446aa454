import type { Logger } from 'pino';
import { ConfigError } from '../config/config-error.ts';
import type { LoadConfigOptions } from '../config/load.ts';
import type { GatehouseConfig, RouteConfig } from '../config/schema.ts';
import { preflight } from './preflight.ts';

/**
 * Reloading the configuration without a restart (SIGHUP, or the console's Reload button): the settings an operator
 * changes while users are connected — who may do what — are applied to the running gateway; everything that shapes
 * its structure (listening address, public URL, store, keys, upstream, the set of routes and their backends) is
 * reported as needing a restart and left as it is. A file `config check` would refuse is refused with the same
 * problems, and the running configuration keeps serving.
 *
 * Applied in place: every part reads these fields from the config objects it was built with, on every request (the
 * bearer check, tool policies, `tools/list` filtering, the consent page, the Protected Resource Metadata documents,
 * the console's admin check), so replacing the field values is enough and no request sees half of a reload.
 */

/** The fields of a route that a reload changes; any other field of a route needs a restart. */
const RELOADABLE_ROUTE_FIELDS = ['scopes', 'requiredScopes', 'tools', 'deniedToolResponse'] as const;
/** The admin lists a reload changes; the rest of `admin` (metrics port and token) needs a restart. */
const RELOADABLE_ADMIN_FIELDS = ['users', 'groups'] as const;

export interface ReloadReport {
  /** What changed and now applies, e.g. `routes[/mcp].tools`, `admin.users`. */
  applied: string[];
  /** What changed in the file but applies only after a restart, e.g. `server`, `routes added: /files`. */
  needsRestart: string[];
}

export type ReloadOutcome = { ok: true; report: ReloadReport } | { ok: false; problems: readonly string[] };

export interface ReloadTarget {
  /** The configuration the running parts read (after the demo's additions, when there are any). */
  live: GatehouseConfig;
  /** The same additions for a freshly loaded file (the demo's stand-in client and admin group); identity otherwise. */
  prepare: (config: GatehouseConfig) => GatehouseConfig;
  /**
   * Scope names the authorization server was built with. oidc-provider fixes its list of supported scopes when it
   * is created, so a scope name new to the whole gateway needs a restart before tokens can carry it.
   */
  knownScopes: ReadonlySet<string>;
  /** Told once a reload changed something in `live`, after every change is made. */
  applied?: () => void;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function without<T extends object>(value: T, keys: readonly string[]): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([key]) => !keys.includes(key))) as Partial<T>;
}

/** Applies what a reload may change from `next` to `target.live` and says what else differs. */
export function applyReload(target: ReloadTarget, nextFile: GatehouseConfig): ReloadReport {
  const { live } = target;
  const next = target.prepare(nextFile);
  const applied: string[] = [];
  const needsRestart: string[] = [];

  for (const key of Object.keys(next) as (keyof GatehouseConfig)[]) {
    if (key === 'routes' || key === 'admin') continue;
    if (!same(live[key], next[key])) needsRestart.push(key);
  }
  if (!same(without(live.admin, RELOADABLE_ADMIN_FIELDS), without(next.admin, RELOADABLE_ADMIN_FIELDS))) needsRestart.push('admin (metrics settings)');

  const nextByPath = new Map(next.routes.map((route) => [route.path, route]));
  const livePaths = new Set(live.routes.map((route) => route.path));
  const added = next.routes.filter((route) => !livePaths.has(route.path)).map((route) => route.path);
  const removed = live.routes.filter((route) => !nextByPath.has(route.path)).map((route) => route.path);
  if (added.length > 0) needsRestart.push(`routes added: ${added.join(', ')}`);
  if (removed.length > 0) needsRestart.push(`routes removed: ${removed.join(', ')}`);

  const changes: (() => void)[] = [];
  for (const route of live.routes) {
    const incoming = nextByPath.get(route.path);
    if (incoming === undefined) continue;
    const changed = changedFields(route, incoming);
    if (changed.length === 0) continue;
    const newScopes = Object.keys(incoming.scopes).filter((scope) => !target.knownScopes.has(scope));
    const waits = changed.filter(
      (field) => !(RELOADABLE_ROUTE_FIELDS as readonly string[]).includes(field) || ((field === 'scopes' || field === 'requiredScopes') && newScopes.length > 0),
    );
    // A route's changes are one edit: applied together or not at all. Applying the reloadable part alone could leave
    // the route more open than both files — a rule moved from `tools` to `defaultToolPolicy` (not reloadable) was
    // dropped from `tools` at once and added nowhere until a restart.
    if (waits.length > 0) {
      const why = newScopes.length > 0 && changed.some((field) => field === 'scopes' || field === 'requiredScopes') ? ` (new scope ${newScopes.join(', ')})` : '';
      needsRestart.push(`routes[${route.path}]: ${changed.join(', ')}${why} — none of this route's changes applied`);
      continue;
    }
    for (const field of RELOADABLE_ROUTE_FIELDS.filter((name) => changed.includes(name))) {
      applied.push(`routes[${route.path}].${field}`);
      changes.push(() => assignRouteField(route, incoming, field));
    }
  }
  for (const field of RELOADABLE_ADMIN_FIELDS) {
    if (same(live.admin[field], next.admin[field])) continue;
    applied.push(`admin.${field}`);
    changes.push(() => {
      live.admin[field] = next.admin[field];
    });
  }
  // Every check is done before the first change: a reload applies entirely or, on an error above, not at all.
  for (const change of changes) change();
  if (changes.length > 0) target.applied?.();
  return { applied, needsRestart };
}

/** The fields whose values differ between two versions of a route (present in either). */
function changedFields(route: RouteConfig, incoming: RouteConfig): string[] {
  const fields = new Set([...Object.keys(route), ...Object.keys(incoming)]);
  return [...fields].filter((field) => !same(route[field as keyof RouteConfig], incoming[field as keyof RouteConfig])).sort();
}

function assignRouteField<K extends (typeof RELOADABLE_ROUTE_FIELDS)[number]>(route: RouteConfig, incoming: RouteConfig, field: K): void {
  route[field] = incoming[field];
}

export interface ConfigReloaderOptions {
  load: LoadConfigOptions;
  target: () => ReloadTarget | undefined;
  logger: Logger;
  now: () => number;
}

export type ReloadTrigger = 'SIGHUP' | 'admin console';

/** The last reload this replica ran: the console's overview shows it (a refused SIGHUP was seen only in the log). */
export interface ReloadRecord {
  trigger: ReloadTrigger;
  /** Epoch ms. */
  at: number;
  outcome: ReloadOutcome;
}

export type ConfigReloader = ((trigger: ReloadTrigger) => ReloadOutcome) & { last(): ReloadRecord | undefined };

/** Loads the file again through the same preflight as `start` and `config check`, then applies it, logging one line. */
export function createConfigReloader(options: ConfigReloaderOptions): ConfigReloader {
  let last: ReloadRecord | undefined;
  const reload = (trigger: ReloadTrigger): ReloadOutcome => {
    const outcome = reloadOnce(options, trigger);
    last = { trigger, at: options.now(), outcome };
    return outcome;
  };
  return Object.assign(reload, { last: () => last });
}

function reloadOnce(options: ConfigReloaderOptions, trigger: ReloadTrigger): ReloadOutcome {
  const target = options.target();
  if (target === undefined) return { ok: false, problems: ['the gateway is still starting'] };
  let next: GatehouseConfig;
  try {
    next = preflight(options.load).config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    options.logger.error(
      { trigger, problems: error.problems },
      `configuration reload refused (${error.problems.length} problem${error.problems.length === 1 ? '' : 's'}): ${error.problems.join('; ')} — the running configuration is unchanged`,
    );
    return { ok: false, problems: error.problems };
  }
  const report = applyReload(target, next);
  // A change held back (a tightened tool policy edited together with a backend, say) is not in force: a warning,
  // not the info line of a reload that did all it was asked.
  if (report.needsRestart.length > 0) options.logger.warn({ trigger, ...report }, reloadSummary(report));
  else options.logger.info({ trigger, ...report }, reloadSummary(report));
  return { ok: true, report };
}

export function reloadSummary(report: ReloadReport): string {
  const applied = report.applied.length === 0 ? 'nothing to apply' : `applied ${report.applied.join(', ')}`;
  const restart = report.needsRestart.length === 0 ? '' : `; changed but not applied until a restart: ${report.needsRestart.join(', ')}`;
  return `configuration reloaded: ${applied}${restart}`;
}
