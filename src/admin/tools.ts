import { createHash } from 'node:crypto';
import { findRecords, publishMessage, readRecord, writeRecord } from '../store/record-access.ts';
import { toolPinKey, toolPinRecord, toolPinsChangedChannel, type ToolPin } from '../records/tool-pins.ts';
import { AdminChangedError, AdminNotFoundError, listAll, type AdminDeps } from './admin-deps.ts';

/**
 * Reviewing pinned tool definitions (src/proxy/tool-pins.ts): what each route's tools are pinned to, what changed,
 * and the admin's decision. A decision is written to the store and announced on `tool-pins-changed`, so every
 * replica applies it at once.
 */
export type ToolStatus = 'approved' | 'changed' | 'new' | 'rejected';

export interface ToolPinSummary {
  route: string;
  name: string;
  status: ToolStatus;
  approvedHash?: string;
  pendingHash?: string;
  /** Epoch ms the pending definition was last seen. */
  changedAt?: number;
  /** The last admin decision: who made it (a console subject, or `cli`), which, and when. */
  decision?: ToolPin['decision'];
}

export interface ToolPinDiff extends ToolPinSummary {
  /** Each definition as pinned (parsed from its RFC 8785 canonical JSON). */
  approved?: Record<string, unknown>;
  pending?: Record<string, unknown>;
  /** Top-level fields whose values differ. */
  changedFields: string[];
}

const statusOf = (pin: ToolPin): ToolStatus =>
  pin.rejected ? 'rejected' : pin.approved === undefined ? 'new' : pin.pending === undefined ? 'approved' : 'changed';

function summarize(pin: ToolPin): ToolPinSummary {
  return {
    route: pin.route,
    name: pin.name,
    status: statusOf(pin),
    approvedHash: pin.approved?.hash,
    pendingHash: pin.pending?.hash,
    changedAt: pin.pending?.seenAt,
    decision: pin.decision,
  };
}

/** Tools waiting for a decision: changed or new definitions (a rejected one has had its decision). */
export async function pendingToolChanges(deps: AdminDeps): Promise<ToolPinSummary[]> {
  return (await listToolPins(deps)).filter((tool) => tool.status === 'changed' || tool.status === 'new');
}

/**
 * Nothing found on a route path the configuration does not have: said as a route unknown (not as "no tools pinned"
 * or an unknown tool), naming the routes there are. A route that was removed keeps its pins: those are still shown.
 */
function requireRoute(deps: AdminDeps, route: string): void {
  if (deps.config.routes.some((configured) => configured.path === route)) return;
  throw new AdminNotFoundError(`No route ${route} in the configuration (routes: ${deps.config.routes.map((configured) => configured.path).join(', ') || 'none'}).`);
}

export async function listToolPins(deps: AdminDeps, filter: { route?: string } = {}): Promise<ToolPinSummary[]> {
  const entries = filter.route
    ? await findRecords(deps.store, toolPinRecord, 'route', filter.route)
    : await listAll(deps.store, toolPinRecord);
  if (filter.route !== undefined && entries.length === 0) requireRoute(deps, filter.route);
  return entries.map((entry) => summarize(entry.value)).sort((a, b) => a.route.localeCompare(b.route) || a.name.localeCompare(b.name));
}

async function requirePin(deps: AdminDeps, route: string, name: string): Promise<ToolPin> {
  const pin = await readRecord(deps.store, toolPinRecord, toolPinKey(route, name));
  if (pin === undefined) requireRoute(deps, route);
  if (pin === undefined) throw new AdminNotFoundError(`No tool "${name}" is pinned on route ${route} (see "gatehouse tools list").`);
  return pin;
}

/**
 * A tool as a console form names it: a digest of its name's UTF-16 code units, not the name. A backend names its
 * tools, and a name need not survive a page and its form: the HTML parser turns U+0000 into U+FFFD, a lone surrogate
 * (valid in JSON) cannot be written in UTF-8 at all, and a form submission turns each CR or LF into CRLF — so a tool
 * named `brand_new\u0000nul` could be neither approved nor rejected (404 forever). A digest is plain ASCII of a fixed
 * size, whatever the name's characters or length; the server maps it back by the route's pins (`pinnedToolNamed`).
 */
export const toolNameDigest = (name: string): string => createHash('sha256').update(Buffer.from(name, 'utf16le')).digest('base64url');

/** The exact name of the tool pinned on `route` whose name has this digest, or undefined when none has. */
export async function pinnedToolNamed(deps: AdminDeps, route: string, digest: string): Promise<string | undefined> {
  const pins = await findRecords(deps.store, toolPinRecord, 'route', route);
  return pins.find((entry) => toolNameDigest(entry.value.name) === digest)?.value.name;
}

const parse = (canonical: string | undefined): Record<string, unknown> | undefined =>
  canonical === undefined ? undefined : (JSON.parse(canonical) as Record<string, unknown>);

export async function diffToolPin(deps: AdminDeps, route: string, name: string): Promise<ToolPinDiff> {
  const pin = await requirePin(deps, route, name);
  const approved = parse(pin.approved?.canonical);
  const pending = parse(pin.pending?.canonical);
  const fields = new Set([...Object.keys(approved ?? {}), ...Object.keys(pending ?? {})]);
  const changedFields = pending === undefined ? [] : [...fields].filter((field) => JSON.stringify(approved?.[field]) !== JSON.stringify(pending[field])).sort();
  return { ...summarize(pin), approved, pending, changedFields };
}

async function save(deps: AdminDeps, pin: ToolPin): Promise<void> {
  await writeRecord(deps.store, toolPinRecord, toolPinKey(pin.route, pin.name), pin, { indexes: { route: pin.route } });
  await publishMessage(deps.store, toolPinsChangedChannel, pin.route);
}

/** Who decided: the console passes the admin's subject; the CLI runs as whoever can open the store. */
export type DecidedBy = string;

/**
 * The pending definition becomes the approved one (under the name it was listed with). `reviewed`: the hash of the
 * definition the admin was shown (the console's form carries it; the CLI's `--hash`). A backend can change the pending
 * definition between the review and the click — the next `tools/list` is enough — and an approval without it approved
 * whatever was pending by then, text nobody read. A mismatch is refused (AdminChangedError).
 */
export async function approveToolPin(deps: AdminDeps, route: string, name: string, by: DecidedBy = 'cli', reviewed?: string): Promise<ToolPinSummary> {
  const pin = await requirePin(deps, route, name);
  if (reviewed !== undefined && pin.pending?.hash !== reviewed) {
    throw new AdminChangedError(`Tool "${pin.name}" on route ${route} changed after it was shown (or was decided already): review it again.`);
  }
  if (pin.pending === undefined) return summarize(pin);
  const listedName = parse(pin.pending.canonical)?.name;
  const approved: ToolPin = {
    route,
    name: typeof listedName === 'string' ? listedName : pin.name,
    approved: pin.pending,
    decision: { verdict: 'approved', by, at: deps.clock.now() },
  };
  return summarize(await saved(deps, approved));
}

/** The pending definition stays refused, under `toolPinning: warn` too, until approved or the backend reverts it. */
export async function rejectToolPin(deps: AdminDeps, route: string, name: string, by: DecidedBy = 'cli'): Promise<ToolPinSummary> {
  const pin = await requirePin(deps, route, name);
  if (pin.pending === undefined && pin.approved !== undefined) {
    throw new AdminNotFoundError(`Tool "${pin.name}" on route ${route} has no changed definition to reject.`);
  }
  return summarize(await saved(deps, { ...pin, rejected: true, decision: { verdict: 'rejected', by, at: deps.clock.now() } }));
}

async function saved(deps: AdminDeps, pin: ToolPin): Promise<ToolPin> {
  await save(deps, pin);
  return pin;
}
