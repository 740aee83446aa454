import { z } from 'zod';
import { foldToolName } from '../protocol/tool-names.ts';
import { defineChannel, defineRecord } from '../store/define-record.ts';

/**
 * Pinned tool definitions (src/proxy/tool-pins.ts): trust on first use of what a backend's `tools/list` says each
 * tool is, so a backend that later rewrites a description or widens a schema (a "rug pull": the model reads the new
 * text as instructions) cannot do so silently. Shared by every replica, so an admin's decision holds everywhere.
 */

const definition = z.object({
  /** SHA-256 (base64url) of the RFC 8785 canonical JSON of the definition. */
  hash: z.string(),
  /** The canonical JSON itself, for `gatehouse tools diff`. */
  canonical: z.string(),
  seenAt: z.number(),
});

export const toolPinRecord = defineRecord({
  namespace: 'tool-pin',
  owner: 'src/proxy/tool-pins.ts',
  key: '`<route path>|<tool name, NFKC + case folded>`',
  schema: z.object({
    route: z.string(),
    /** The name exactly as the backend listed it when it was pinned. */
    name: z.string(),
    /** The approved definition; absent for a tool that appeared after the route was first listed. */
    approved: definition.optional(),
    /** A definition that differs from the approved one, waiting for `gatehouse tools approve|reject`. */
    pending: definition.optional(),
    /** `reject`ed: the pending definition stays refused even with `toolPinning: warn`. */
    rejected: z.boolean().optional(),
    /** The last admin decision on this tool: who (console subject, or `cli`), what and when (epoch ms). */
    decision: z.object({ verdict: z.enum(['approved', 'rejected']), by: z.string(), at: z.number() }).optional(),
  }),
  ttl: 'none (deleted by an admin)',
  indexes: ['route'],
  singleUse: false,
  secrets: 'none: tool definitions as the backend publishes them',
  description:
    "One tool of a route: the definition approved on first use (or by an admin) and any changed one seen since. Written by the gateway when a `tools/list` answer passes; read on every `tools/call` (cached per replica) and by `gatehouse tools list|diff|approve|reject`.",
});

export const toolPinBaselineRecord = defineRecord({
  namespace: 'tool-pin-baseline',
  owner: 'src/proxy/tool-pins.ts',
  key: 'the route path',
  schema: z.object({ route: z.string(), firstListedAt: z.number() }),
  ttl: 'none',
  singleUse: false,
  secrets: 'none',
  description:
    'When a route was first listed: the tools of that first answer are trusted on first use, any tool appearing later is new and waits for approval.',
});

export const toolPinsChangedChannel = defineChannel({
  name: 'tool-pins-changed',
  owner: 'src/proxy/tool-pins.ts',
  message: 'the route path whose pins changed',
  description: 'Tells every replica to drop its cached pins of that route (an admin approved or rejected a tool, or a change was seen).',
});

export type ToolPin = z.infer<typeof toolPinRecord.schema>;

export const toolPinKey = (route: string, name: string): string => `${route}|${foldToolName(name)}`;
