import { z } from 'zod';
import { defineChannel, defineCounter, defineRecord } from '../store/define-record.ts';

/**
 * The gateway's records (src/proxy/) besides the audit log (audit.ts): MCP session bindings and the shared rate-limit
 * counters. A session binding ties a session id to the user who created it (MCP security best practices, "session
 * hijacking"). It belongs to whom the backend last issued the id: a backend whose ids repeat (a counter restarted)
 * has ended the session its id named before, so that owner's binding is replaced, and the session ended for them.
 */

const binding = z.object({
  subject: z.string(),
  route: z.string(),
  /** The OAuth client that opened it (absent in bindings written before it was kept: those match any client). */
  clientId: z.string().optional(),
  createdAt: z.number(),
  /** Legacy SSE only: the backend's message endpoint for this session. */
  backendMessageUrl: z.string().optional(),
});

export const mcpSessionRecord = defineRecord({
  namespace: 'mcp-session',
  owner: 'src/proxy/session-bindings.ts',
  key: "the backend's `Mcp-Session-Id`",
  schema: binding,
  ttl: '24 h; deleted on a successful `DELETE` (while the store is unavailable, retried in the background for about 30 s), or when the user opens more than `rateLimit.sessionsPerUser` on the route (the opening client\'s oldest first)',
  indexes: ['subject', 'owner'],
  singleUse: false,
  secrets: 'the session id is plain (a routing handle bound to its user, not a credential)',
  description: 'A Streamable HTTP session issued by the backend, bound to the user, client and route that created it; indexed by `owner` (`<route> <subject>`) to find a user\'s sessions on a route.',
});

export const legacySseSessionRecord = defineRecord({
  namespace: 'legacy-sse-session',
  owner: 'src/proxy/session-bindings.ts',
  key: "the gateway's session id (24 random bytes, base64url)",
  schema: binding,
  ttl: '24 h; deleted when the SSE stream closes (retried as `mcp-session`)',
  indexes: ['subject'],
  singleUse: false,
  secrets: 'as `mcp-session`',
  description:
    'A legacy HTTP+SSE session issued by the gateway, bound to its user and route, with the backend message URL so whichever replica receives the POST can route it.',
});

export const mcpTaskRecord = defineRecord({
  namespace: 'mcp-task',
  owner: 'src/proxy/task-bindings.ts',
  key: "the route and the backend's task id, separated by a space",
  schema: z.object({
    subject: z.string(),
    clientId: z.string(),
    route: z.string(),
    /** The tool whose call made the task: its policy judges every later request naming the task. */
    tool: z.string().optional(),
    createdAt: z.number(),
  }),
  ttl: "twice the task's own (`ttl` in 2025-11-25, `ttlMs` in the 2026-07-28 extension: a backend may start it again when the result is stored) plus 60 s, at most 7 days; 7 days for a task kept without a limit",
  indexes: [],
  singleUse: false,
  secrets: 'the task id is plain (a handle bound to its user, not a credential)',
  description:
    'An MCP task a backend created for a task-augmented request, bound to the user, client and route that asked: a `tasks/get`, `tasks/result`, `tasks/update` or `tasks/cancel` naming it from anyone else is answered "Task not found", and a `tasks/list` answer keeps only the caller\'s own.',
});

export const sessionEndedChannel = defineChannel({
  name: 'session-ended',
  owner: 'src/proxy/session-bindings.ts',
  message: 'the namespace of the ended session and its id, separated by a space (`mcp-session <id>`)',
  description:
    "Published after an `mcp-session` or `legacy-sse-session` record is deleted: every replica drops its cached binding and cuts the session's streams it carries.",
});

export const dpopProofRecord = defineRecord({
  namespace: 'dpop-proof',
  owner: 'src/proxy/dpop-proof.ts',
  key: 'SHA-256 (base64url) of the proof key\'s RFC 7638 thumbprint and the proof\'s `jti`',
  schema: z.object({ seenAt: z.number() }),
  ttl: 'until the proof\'s `iat` leaves the acceptance window (at most 2 × 60 s)',
  singleUse: false,
  secrets: 'none: a hash of public values',
  description:
    'A DPoP proof already presented to a protected route (RFC 9449 §11.1), written with `setIfAbsent` (one round trip) so a proof replayed to any replica within its window is refused.',
});

export const rateLimitCounter = defineCounter({
  namespace: 'rate-limit',
  owner: 'src/proxy/rate-limit.ts',
  key: '`<minute>:u:<route path>:<subject>` and `<minute>:c:<route path>:<client id>` (`<minute>` = epoch ms ÷ 60000)',
  ttl: '120 s',
  description: 'Requests in that minute claimed by the replicas together: each claims a lease (what it admitted so far in the minute, at most a twentieth of the limit or of what is left, 1 to 256) before admitting that many, so together they never admit more than the limit.',
});
