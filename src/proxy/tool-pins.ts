import type { Logger } from 'pino';
import type { Clock } from '../runtime/clock.ts';
import { createRecord, findRecords, publishMessage, readRecord, subscribeChannel, writeRecord } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';
import { toolPinBaselineRecord, toolPinKey, toolPinRecord, toolPinsChangedChannel, type ToolPin } from '../records/tool-pins.ts';
import { foldToolName } from '../protocol/tool-names.ts';
import { toolDefinition, type ToolDefinition } from './tool-definition.ts';

/**
 * Pinned tool definitions, trust on first use: the first `tools/list` answer of a route pins every tool's definition
 * (tool-definition.ts); a later answer with a changed definition, or a tool that was not in that first answer, is
 * recorded as pending and waits for `gatehouse tools approve|reject`. What the gateway does meanwhile is the route's
 * `toolPinning`: `block` hides the tool and refuses its calls, `warn` serves it and says so in the log and audit.
 *
 * The pins live in the store (records/tool-pins.ts) so every replica sees one decision; each replica keeps a route's
 * pins in memory for CACHE_MS, dropped at once when the `tool-pins-changed` channel names the route.
 *
 * @see MCP security best practices (tool poisoning, "rug pull")
 */
const CACHE_MS = 10_000;

/** Where a called tool stands. Only `pinned` is served under `block`; only `rejected` is refused under `warn`. */
export type ToolStanding = 'pinned' | 'changed' | 'new' | 'unlisted' | 'rejected';

export interface ToolPins {
  /** Records what a `tools/list` answer of `route` says; returns the listed names that are not `pinned`. */
  review(route: string, tools: readonly unknown[]): Promise<Set<string>>;
  standing(route: string, name: string): Promise<ToolStanding>;
  /**
   * What a policy may trust of the tool's approved definition (a backend's current one it may not): its annotations,
   * and the input schema arguments are type-checked against (argument-policy.ts).
   */
  approvedTool(route: string, name: string): Promise<ApprovedTool>;
}

export interface ApprovedTool {
  annotations: Record<string, unknown>;
  /** Undefined when no definition is approved, or it has none. */
  inputSchema?: unknown;
  /** The backend now lists another definition (served under `toolPinning: warn`): it may read by another schema. */
  changed?: true;
}

interface RoutePins {
  loadedAt: number;
  byName: Map<string, ToolPin>;
  baselined: boolean;
}

export function createToolPins({ store, clock, logger }: { store: Store; clock: Clock; logger: Logger }): ToolPins {
  const cache = new Map<string, RoutePins>();
  let subscribed: Promise<unknown> | undefined;

  const subscribe = () =>
    (subscribed ??= subscribeChannel(store, toolPinsChangedChannel, (route) => void cache.delete(route))
      .catch((error: unknown) => logger.warn({ err: error }, 'tool pin changes will be seen only when the cache expires')));

  async function load(route: string): Promise<RoutePins> {
    await subscribe();
    const cached = cache.get(route);
    if (cached && clock.now() - cached.loadedAt < CACHE_MS) return cached;
    const entries = await findRecords(store, toolPinRecord, 'route', route);
    const baselined = (await readRecord(store, toolPinBaselineRecord, route)) !== undefined;
    const fresh = { loadedAt: clock.now(), byName: new Map(entries.map((entry) => [foldToolName(entry.value.name), entry.value])), baselined };
    cache.set(route, fresh);
    return fresh;
  }

  const changed = async (route: string) => {
    cache.delete(route);
    await publishMessage(store, toolPinsChangedChannel, route).catch(() => {});
  };

  /** The first answer of a route is its baseline: of concurrent first answers (replicas) exactly one wins. */
  async function claimBaseline(route: string): Promise<boolean> {
    return createRecord(store, toolPinBaselineRecord, route, { route, firstListedAt: clock.now() });
  }

  async function recordDefinition(route: string, pin: ToolPin | undefined, tool: ToolDefinition, trusted: boolean): Promise<void> {
    const seen = { hash: tool.hash, canonical: tool.canonical, seenAt: clock.now() };
    const key = toolPinKey(route, tool.name);
    if (pin === undefined) {
      const value: ToolPin = trusted ? { route, name: tool.name, approved: seen } : { route, name: tool.name, pending: seen };
      await createRecord(store, toolPinRecord, key, value, { indexes: { route } });
    } else if (pin.approved?.hash === tool.hash) {
      // The backend serves the approved definition again: what a caller gets is what was approved.
      await writeRecord(store, toolPinRecord, key, { route, name: pin.name, approved: pin.approved, decision: pin.decision }, { indexes: { route } });
    } else {
      await writeRecord(store, toolPinRecord, key, { ...pin, pending: seen, rejected: undefined }, { indexes: { route } });
    }
    if (!trusted) logger.warn({ route, tool: tool.name }, 'tool definition differs from the pinned one; waiting for `gatehouse tools approve`');
  }

  /**
   * One review of a route at a time in this process: a review spans several store writes (a turn each on SQLite, a
   * round trip on Redis), and a second `tools/list` answer reviewed meanwhile against the pins cached before the
   * first one's writes saw no baseline it could claim and no pins, and recorded every tool as pending. The next one
   * starts when the previous one has written and dropped the cache, so it reads what the previous one pinned.
   * (Replicas racing on a route's first answer are settled by `claimBaseline`, which exactly one of them wins.)
   */
  const reviewing = new Map<string, Promise<unknown>>();

  async function review(route: string, entries: readonly unknown[]): Promise<Set<string>> {
    const run = (reviewing.get(route) ?? Promise.resolve()).catch(() => {}).then(() => reviewNow(route, entries));
    reviewing.set(route, run);
    try {
      return await run;
    } finally {
      if (reviewing.get(route) === run) reviewing.delete(route);
    }
  }

  async function reviewNow(route: string, entries: readonly unknown[]): Promise<Set<string>> {
    // Read before the baseline is claimed: an answer whose review fails must not use up the route's first listing,
    // or every tool of the next answer would be "new" (trust on first use with nothing trusted).
    const definitions = entries.map(toolDefinition);
    const pins = await load(route);
    const trusted = !pins.baselined && (await claimBaseline(route));
    let wrote = !pins.baselined;
    const unpinned = new Set<string>();
    // One answer naming one tool twice — the same name with two definitions, or names that fold alike (`send_mail`,
    // `Send_Mail`): only the first entry could be pinned (`pins` is read once, before this answer's writes), and the
    // others reached the client unpinned, the first answer's included. The first name stands; a later look-alike is
    // hidden, and a name listed with two definitions is hidden whole (which one is the tool is not for us to guess).
    // A name listed with two definitions is also held as a change of that tool (pending review), so it is refused
    // when called too, not only hidden: which definition the backend runs is unknown.
    const inThisAnswer = new Map<string, { name: string; hash: string; pin: ToolPin | undefined }>();
    for (const tool of definitions) {
      if (tool === undefined) continue;
      const folded = foldToolName(tool.name);
      const earlier = inThisAnswer.get(folded);
      if (earlier !== undefined) {
        if (earlier.name !== tool.name || earlier.hash !== tool.hash) unpinned.add(tool.name);
        if (earlier.name === tool.name && earlier.hash !== tool.hash && earlier.pin?.approved !== undefined && earlier.pin.approved.hash !== tool.hash) {
          await recordDefinition(route, earlier.pin, tool, false);
          wrote = true;
        }
        continue;
      }
      const pin = pins.byName.get(folded);
      const trustedNow = trusted && pin === undefined;
      const seen = { hash: tool.hash, canonical: tool.canonical, seenAt: clock.now() };
      // The pin as it stands once this entry is reviewed (what a twin later in the answer is compared with).
      inThisAnswer.set(folded, { name: tool.name, hash: tool.hash, pin: pin ?? (trustedNow ? { route, name: tool.name, approved: seen } : undefined) });
      const current = pin?.approved?.hash === tool.hash && pin.name === tool.name && pin.pending === undefined && !pin.rejected;
      if (current) continue;
      const known = pin !== undefined && pin.pending?.hash === tool.hash;
      if (!known) {
        await recordDefinition(route, pin, tool, trustedNow);
        wrote = true;
      }
      if (!trustedNow && pin?.approved?.hash !== tool.hash) unpinned.add(tool.name);
    }
    if (wrote) await changed(route);
    return unpinned;
  }

  async function standing(route: string, name: string): Promise<ToolStanding> {
    const pin = (await load(route)).byName.get(foldToolName(name));
    if (pin === undefined || pin.name !== name) return 'unlisted';
    if (pin.rejected) return 'rejected';
    if (pin.approved === undefined) return 'new';
    return pin.pending === undefined ? 'pinned' : 'changed';
  }

  async function approvedTool(route: string, name: string): Promise<ApprovedTool> {
    const pin = (await load(route)).byName.get(foldToolName(name));
    if (pin?.approved === undefined || pin.name !== name) return { annotations: {} };
    const { annotations, inputSchema } = JSON.parse(pin.approved.canonical) as { annotations?: unknown; inputSchema?: unknown };
    return {
      annotations: annotations && typeof annotations === 'object' && !Array.isArray(annotations) ? (annotations as Record<string, unknown>) : {},
      ...(inputSchema === undefined ? {} : { inputSchema }),
      ...(pin.pending === undefined ? {} : { changed: true as const }),
    };
  }

  return { review, standing, approvedTool };
}
