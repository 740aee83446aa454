import { jsonRpcCodes, ProtocolError } from '../errors/protocol-error.ts';
import { memberNamesProblem, misspeltMember, memberSpellings } from '../protocol/duplicate-members.ts';
import { mcpTaskRecord } from '../records/proxy.ts';
import { createRecord, readRecord } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';
import { McpGatewayError } from './gateway-error.ts';
import type { McpPost } from './mcp-message.ts';
import type { SseEvent } from './sse-events.ts';

/**
 * MCP tasks bound to the caller that created them. A task id is a handle to another request's work and result; MCP
 * 2025-11-25 (utilities/tasks, "Security") asks a receiver to bind tasks to the authorization context and to list only
 * the requestor's own. A backend behind the gateway sees one caller at a time through the identity assertion, and the
 * MCP SDK's own task store keys tasks by session only: a stateless server (every 2026-07-28 server, any server
 * without sessions) answered `tasks/get`, `tasks/result` and `tasks/cancel` for any task id, and `tasks/list` with
 * every user's tasks — the result of a tool the caller's policy refuses them included. The gateway knows the caller:
 * the answer that creates a task is read, and the task bound to its user, client and route (namespace `mcp-task`,
 * on every replica) before the answer goes on; a request naming a task is refused unless the caller is its owner, as
 * a backend answers an unknown id; a `tasks/list` answer keeps the caller's own.
 *
 * Both generations are read: 2025-11-25 (`params.task` on the request, `result.task.taskId` in the answer, `ttl`) and
 * the 2026-07-28 tasks extension (the request declares the extension in `_meta`, the answer is `resultType: "task"`
 * with `taskId` and `ttlMs`). Only the answers of requests that may create a task, and of `tasks/list`, are read,
 * and a resumed stream (a GET with `Last-Event-ID`, which replays answers): every other answer passes as before,
 * unread. A `tasks/list` page's `nextCursor` is sealed to its caller: the MCP SDK's cursor is the last task id of the
 * page, another user's as often as not, and a cursor the gateway did not hand this caller is refused.
 */

/** Methods that name one task in `params.taskId`. */
const NAMING_METHODS: ReadonlySet<string> = new Set(['tasks/get', 'tasks/result', 'tasks/update', 'tasks/cancel']);
const CLIENT_CAPABILITIES_META = 'io.modelcontextprotocol/clientCapabilities';
const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';

/** A binding outlives the task it names by this much (clock skew between the backend and the gateway). */
const TTL_MARGIN_SECONDS = 60;
/** The longest a binding lives: also the life of one for a task the backend keeps without a limit (`ttl: null`). */
export const TASK_BINDING_MAX_SECONDS = 7 * 24 * 3600;

export interface TaskOwner {
  subject: string;
  clientId: string;
}

type RequestId = string | number;

/** What of one POST's answer is read for tasks: the requests that may create one, and the `tasks/list` requests. */
export interface TaskScreen {
  /** The requests that may create a task, with the tool each calls (none for another method). */
  creating: ReadonlyMap<RequestId, string | undefined>;
  listing: ReadonlySet<RequestId>;
  /** A resumed stream's replayed answers: any created task is bound, any task list cut, whatever its id. */
  byShape?: boolean;
}

/** The screen of a resumed stream (a GET with `Last-Event-ID`): its answers are to requests the gateway did not see here. */
export const REPLAYED_ANSWERS: TaskScreen = { creating: new Map(), listing: new Set(), byShape: true };

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Whether a request asks for a task: 2025-11-25's `params.task` (any method), or a `tools/call` with the 2026-07-28
 * extension declared in `_meta` — a client declares it on every request, and only a tool call becomes a task there.
 */
function mayCreateTask(method: string, params: Record<string, unknown> | undefined): boolean {
  if (params === undefined) return false;
  if (params.task !== undefined) return true;
  if (method !== 'tools/call') return false;
  const meta = params._meta;
  if (!isObject(meta)) return false;
  const capabilities = meta[CLIENT_CAPABILITIES_META];
  return isObject(capabilities) && isObject(capabilities.extensions) && Object.hasOwn(capabilities.extensions, TASKS_EXTENSION);
}

/**
 * The tasks a 2026-07-28 `subscriptions/listen` names (`params.notifications.taskIds`): their notifications carry the
 * task's status, its input requests and its result. Undefined for anything else; an entry that is not a string is ''
 * (refused as unknown).
 */
function subscribedTasks(method: string, params: Record<string, unknown> | undefined): string[] | undefined {
  if (method !== 'subscriptions/listen' || params === undefined || !isObject(params.notifications)) return undefined;
  const { taskIds } = params.notifications;
  if (taskIds === undefined) return undefined;
  if (!Array.isArray(taskIds)) return [''];
  return taskIds.map((taskId) => (typeof taskId === 'string' ? taskId : ''));
}

/** What a POST does with tasks: the ids it names, the cursors it pages with, and what of its answer is read. */
export interface TaskUse {
  /**
   * Tasks of `tasks/get` and the like, each to be the caller's own (`taskId` '' for one that is not a string), with
   * the method naming it (`subscriptions/listen` for a subscription).
   */
  named: Array<{ taskId: string; method: string }>;
  /** The `tasks/list` requests that carry a cursor: each a cursor this gateway sealed for the caller. */
  paging: Array<{ params: Record<string, unknown>; cursor: unknown }>;
  screen?: TaskScreen;
}

const invalidId = () => new McpGatewayError('invalid_request', jsonRpcCodes.invalidRequest, "A request's id must be a string or a number.");

/**
 * One pass over a POST's messages; undefined for most (no task named, none asked for, no list). A naming method is
 * checked with or without an id: a backend that runs a `tasks/cancel` sent as a notification must not be reached
 * with another's task either. A listing or task-creating request whose id is no id is refused: its answer could not
 * be matched to it, and would pass unscreened.
 */
export function taskUseOf(post: McpPost): TaskUse | undefined {
  let use: TaskUse | undefined;
  let creating: Map<RequestId, string | undefined> | undefined;
  let listing: Set<RequestId> | undefined;
  for (const message of post.messages) {
    if (!('method' in message)) continue;
    const { method } = message;
    const params = isObject(message.params) ? message.params : undefined;
    if (NAMING_METHODS.has(method)) {
      // A task id that is not a string names no task the gateway bound: refused as unknown (the backend would refuse
      // it as invalid; an id a lenient backend reads as one of its tasks must not pass unchecked).
      (use ??= { named: [], paging: [] }).named.push({ taskId: typeof params?.taskId === 'string' ? params.taskId : '', method });
      continue;
    }
    const subscribed = subscribedTasks(method, params);
    if (subscribed !== undefined) (use ??= { named: [], paging: [] }).named.push(...subscribed.map((taskId) => ({ taskId, method })));
    const listed = method === 'tasks/list';
    if (!listed && !mayCreateTask(method, params)) continue;
    if (!('id' in message)) continue;
    const id = message.id;
    if (typeof id !== 'string' && typeof id !== 'number') throw invalidId();
    if (!listed) {
      (creating ??= new Map()).set(id, method === 'tools/call' && typeof params?.name === 'string' ? params.name : undefined);
      continue;
    }
    (listing ??= new Set()).add(id);
    if (params !== undefined && params.cursor !== undefined) {
      // The cursor is opened by writing the request again: alone, not a batch whose other messages would be written
      // again with it (a number's spelling, a large integer's digits).
      if (post.batchRequestIds !== undefined) throw new McpGatewayError('invalid_request', jsonRpcCodes.invalidRequest, 'Send a tasks/list with a cursor on its own, not in a batch.');
      (use ??= { named: [], paging: [] }).paging.push({ params, cursor: params.cursor });
    }
  }
  if (creating === undefined && listing === undefined) return use;
  (use ??= { named: [], paging: [] }).screen = { creating: creating ?? new Map(), listing: listing ?? new Set() };
  return use;
}

/** As a backend answers an id it does not know (JSON-RPC invalid params, HTTP 200): never saying whose it is. */
export const taskNotFound = (): McpGatewayError => new McpGatewayError('invalid_request', jsonRpcCodes.invalidParams, 'Task not found', { status: 200 });

/** The first protocol revision of the tasks extension (SEP-2663), which removed `tasks/result` and `tasks/list`. */
const TASKS_EXTENSION_REVISION = '2026-07-28';

/**
 * The refusal of a request naming a task that is not the caller's: `Task not found`, as a backend answers an unknown
 * id; but a `tasks/result` of the 2026-07-28 revision or later is a method that revision removed, which a conformant
 * backend answers `Method not found` (-32601) whatever the id: so does the gateway, so as to change no answer a
 * client of that revision relies on.
 */
export function unknownTaskRefusal(method: string, protocolVersion: string | undefined): McpGatewayError {
  return method === 'tasks/result' && removedByTasksExtension(protocolVersion) ? methodNotFound() : taskNotFound();
}

/** A `tasks/list` cursor the gateway did not hand this caller: `Invalid cursor`, or as the 2026-07-28 revision answers a method it removed. */
export function cursorRefusal(protocolVersion: string | undefined): McpGatewayError {
  return removedByTasksExtension(protocolVersion) ? methodNotFound() : invalidCursor();
}

/** Whether a request speaks a revision that removed `tasks/result` and `tasks/list` (a date, compared as one). */
const removedByTasksExtension = (protocolVersion: string | undefined): boolean =>
  protocolVersion !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(protocolVersion) && protocolVersion >= TASKS_EXTENSION_REVISION;

const methodNotFound = (): McpGatewayError => new McpGatewayError('invalid_request', jsonRpcCodes.methodNotFound, 'Method not found', { status: 200 });

export interface TaskBindings {
  /**
   * Binds a task to its creator on `route`, with the tool whose call made it; the first binding stands (a replayed
   * answer cannot move a task).
   */
  bind(route: string, taskId: string, owner: TaskOwner, tool: string | undefined, ttlSeconds: number): Promise<void>;
  /** The tool that made the task (undefined for none); throws taskNotFound unless `owner` created it on `route`. */
  require(route: string, taskId: string, owner: TaskOwner): Promise<string | undefined>;
  /**
   * Which of `taskIds` (one page of a list) `owner` created on `route`: one read per id, so a list costs its page,
   * never every task the user ever made.
   */
  ownedAmong(route: string, owner: TaskOwner, taskIds: readonly string[]): Promise<ReadonlySet<string>>;
  /** A backend's `nextCursor`, sealed to `owner` on `route`. */
  sealCursor(route: string, owner: TaskOwner, cursor: string): string;
  /** The backend's cursor a sealed one stands for; throws invalidCursor unless it was sealed to `owner` on `route`. */
  openCursor(route: string, owner: TaskOwner, sealed: unknown): string;
}

/** As a backend answers a cursor it did not hand out (JSON-RPC invalid params, HTTP 200). */
const invalidCursor = (): McpGatewayError => new McpGatewayError('invalid_request', jsonRpcCodes.invalidParams, 'Invalid cursor', { status: 200 });

/** Sealing: the keyring's (AES-256-GCM, the current sealing key; any key of the set opens). */
export interface CursorSealing {
  seal(plaintext: string, context: string): string;
  unseal(sealed: string, context: string): string;
}

const cursorContext = (route: string, owner: TaskOwner): string => `mcp-task-cursor\n${route}\n${owner.subject}\n${owner.clientId}`;

const bindingKey = (route: string, taskId: string): string => `${route} ${taskId}`;

export function createTaskBindings(store: Store, now: () => number, sealing: CursorSealing): TaskBindings {
  return {
    sealCursor: (route, owner, cursor) => sealing.seal(cursor, cursorContext(route, owner)),
    openCursor(route, owner, sealed) {
      if (typeof sealed !== 'string') throw invalidCursor();
      try {
        return sealing.unseal(sealed, cursorContext(route, owner));
      } catch {
        throw invalidCursor();
      }
    },
    async bind(route, taskId, owner, tool, ttlSeconds) {
      const binding = { subject: owner.subject, clientId: owner.clientId, route, ...(tool === undefined ? {} : { tool }), createdAt: now() };
      await createRecord(store, mcpTaskRecord, bindingKey(route, taskId), binding, { ttlSeconds });
    },
    async require(route, taskId, owner) {
      if (taskId === '') throw taskNotFound();
      const binding = await readRecord(store, mcpTaskRecord, bindingKey(route, taskId), { invalid: 'absent' });
      if (binding === undefined || binding.subject !== owner.subject || binding.clientId !== owner.clientId || binding.route !== route) throw taskNotFound();
      return binding.tool;
    },
    async ownedAmong(route, owner, taskIds) {
      const mine = new Set<string>();
      await Promise.all(
        taskIds.map(async (taskId) => {
          const binding = await readRecord(store, mcpTaskRecord, bindingKey(route, taskId), { invalid: 'absent' });
          if (binding !== undefined && binding.subject === owner.subject && binding.clientId === owner.clientId && binding.route === route) mine.add(taskId);
        }),
      );
      return mine;
    },
  };
}

/**
 * How long a binding lives for a task whose answer says `ttlMs` (null or absent: kept without a limit): twice the
 * task's TTL and a minute, as a backend may keep a task that long — the MCP SDK's task store starts the TTL again
 * when the result is stored, so a task finishing late in its TTL stays up to twice it from creation, and a binding of
 * one TTL left its owner "Task not found" for a result the backend still held.
 */
export function bindingTtlSeconds(ttlMs: unknown): number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs < 0) return TASK_BINDING_MAX_SECONDS;
  return Math.min(TASK_BINDING_MAX_SECONDS, 2 * Math.ceil(ttlMs / 1000) + TTL_MARGIN_SECONDS);
}

/** The task an answer's result creates: 2025-11-25 `{ task: { taskId, ttl } }`, or 2026-07-28 `{ resultType: "task", taskId, ttlMs }`. */
function createdTask(result: unknown): { taskId: string; ttlMs: unknown } | undefined {
  if (!isObject(result)) return undefined;
  if (result.resultType === 'task' && typeof result.taskId === 'string') return { taskId: result.taskId, ttlMs: result.ttlMs };
  const task = result.task;
  if (isObject(task) && typeof task.taskId === 'string') return { taskId: task.taskId, ttlMs: task.ttl };
  return undefined;
}

const TASKS_SPELLING = memberSpellings(['tasks']);

/** The most entries of one task list page that are looked up (in chunks); a longer page is refused. */
const MAX_LISTED_TASKS = 10_000;
const LOOKUP_CHUNK = 500;

/** A task list's entries: objects with a string `taskId` (a resumed stream's answer is judged by its shape). */
const listsTasks = (result: unknown): result is { tasks: unknown[] } =>
  isObject(result) && Array.isArray(result.tasks) && result.tasks.length > 0 && result.tasks.every((task) => isObject(task) && typeof task.taskId === 'string');

interface MessageScreen {
  screen: TaskScreen;
  bind(taskId: string, tool: string | undefined, ttlMs: unknown): Promise<void>;
  ownedAmong(taskIds: readonly string[]): Promise<ReadonlySet<string>>;
  sealCursor(cursor: string): string;
}

/**
 * One answer message, screened: a created task bound first (then the message goes on unchanged), a `tasks/list`
 * result cut to the caller's own, its `nextCursor` sealed to the caller. A result member a case-insensitive client
 * reads as the list (`Tasks`) is refused: the screen would not have cut it. Returns the message to send: the same
 * object when nothing changed.
 */
async function screenMessage(message: unknown, screening: MessageScreen): Promise<unknown> {
  if (!isObject(message) || !('result' in message)) return message;
  const { screen } = screening;
  const id = message.id;
  if (!screen.byShape && typeof id !== 'string' && typeof id !== 'number') return message;
  const result = message.result;
  if (screen.byShape || screen.creating.has(id as RequestId)) {
    const created = createdTask(result);
    if (created !== undefined) await screening.bind(created.taskId, screen.creating.get(id as RequestId), created.ttlMs);
  }
  const listing = screen.byShape ? listsTasks(result) || misspeltMember(result, TASKS_SPELLING) !== undefined : screen.listing.has(id as RequestId);
  if (!listing) return message;
  if (misspeltMember(result, TASKS_SPELLING) !== undefined) {
    throw new ProtocolError('bad_gateway', 'The backend answered tasks/list with member names a client may read otherwise than the gateway, which it cannot screen.');
  }
  if (!isObject(result) || !Array.isArray(result.tasks)) return message;
  // A page longer than any backend pages (the MCP SDK's holds 10) is not read entry by entry; cutting its tail would
  // lose those tasks for good (the cursor goes past them), so it is not passed on.
  if (result.tasks.length > MAX_LISTED_TASKS) {
    throw new ProtocolError('bad_gateway', `The backend answered tasks/list with a page of more than ${MAX_LISTED_TASKS} tasks, more than the gateway screens.`);
  }
  const page = result.tasks;
  const ids = page.flatMap((task) => (isObject(task) && typeof task.taskId === 'string' ? [task.taskId] : []));
  const mine = new Set<string>();
  // In chunks: a long page is not thousands of store reads at once.
  for (let start = 0; start < ids.length; start += LOOKUP_CHUNK) {
    for (const id of await screening.ownedAmong(ids.slice(start, start + LOOKUP_CHUNK))) mine.add(id);
  }
  const tasks = page.filter((task) => isObject(task) && typeof task.taskId === 'string' && mine.has(task.taskId));
  const cursor = typeof result.nextCursor === 'string' ? { nextCursor: screening.sealCursor(result.nextCursor) } : {};
  if (tasks.length === result.tasks.length && !('nextCursor' in cursor)) return message;
  return { ...message, result: { ...result, tasks, ...cursor } };
}

export interface TaskAnswerScreen {
  /** A JSON answer: the same bytes unless a `tasks/list` result was cut. */
  json(body: Buffer): Promise<Buffer>;
  /** One SSE event: the same event unless a `tasks/list` result was cut. */
  event(event: SseEvent): Promise<SseEvent>;
}

/**
 * The screen of one POST's answer. A binding the store could not write fails the answer (503: the client retries;
 * the task the backend made is then nobody's, and expires with its TTL), as relaying it would hand out a task its
 * owner could not reach.
 */
export function taskAnswerScreen(bindings: TaskBindings, route: string, owner: TaskOwner, screen: TaskScreen): TaskAnswerScreen {
  const screening: MessageScreen = {
    screen,
    bind: (taskId, tool, ttlMs) => bindings.bind(route, taskId, owner, tool, bindingTtlSeconds(ttlMs)),
    ownedAmong: (taskIds) => bindings.ownedAmong(route, owner, taskIds),
    sealCursor: (cursor) => bindings.sealCursor(route, owner, cursor),
  };
  const screenParsed = async (parsed: unknown): Promise<unknown> =>
    Array.isArray(parsed)
      ? Promise.all(parsed.map((message) => screenMessage(message, screening))).then((screened) =>
          screened.every((message, index) => message === parsed[index]) ? parsed : screened,
        )
      : screenMessage(parsed, screening);
  // An answer that does not parse is passed as it came: no client reads a task or a list out of it either.
  const parse = (text: string): unknown => {
    const json = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      return undefined;
    }
    // A list named twice (`"tasks":[mine],"tasks":[all]`): a parser that keeps the first would read the uncut one.
    if ((screen.byShape || screen.listing.size > 0) && memberNamesProblem(json, parsed) !== undefined) {
      throw new ProtocolError('bad_gateway', 'The backend answered with member names a client may read otherwise than the gateway, which it cannot screen.');
    }
    return parsed;
  };
  return {
    async json(body) {
      const parsed = parse(body.toString('utf8'));
      const screened = await screenParsed(parsed);
      return screened === parsed ? body : Buffer.from(JSON.stringify(screened));
    },
    async event(event) {
      // Every event is parsed: a member spelt with JSON escapes (`"\u0072esult"`) is still `result`.
      const parsed = parse(event.data);
      const screened = await screenParsed(parsed);
      return screened === parsed ? event : { ...event, data: JSON.stringify(screened) };
    },
  };
}

/**
 * A POST whose `tasks/list` requests page with cursors, with each cursor the gateway sealed to this caller opened to
 * the backend's own (throws invalidCursor for any other: a raw backend cursor is another caller's task id as often as
 * not). Only such a POST is written again; every other is forwarded as it came.
 */
export function withOpenedCursors(post: McpPost, paging: TaskUse['paging'], open: (sealed: unknown) => string): McpPost {
  if (paging.length === 0) return post;
  for (const page of paging) page.params.cursor = open(page.cursor);
  const body = post.batchRequestIds === undefined ? post.messages[0] : post.messages;
  return { ...post, raw: Buffer.from(JSON.stringify(body)) };
}
