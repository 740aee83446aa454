import { jsonRpcCodes, ProtocolError } from '../errors/protocol-error.ts';
import { memberNamesProblem, misspeltMember, memberSpellings } from '../protocol/duplicate-members.ts';
import { mcpTaskRecord } from '../records/proxy.ts';
import { createRecord, findRecords, readRecord } from '../store/record-access.ts';
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
 * with `taskId` and `ttlMs`). Only the answers of requests that may create a task, and of `tasks/list`, are read:
 * every other answer passes as before, unread.
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
  creating: ReadonlySet<RequestId>;
  listing: ReadonlySet<RequestId>;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Whether a request asks for a task: 2025-11-25's `params.task`, or the 2026-07-28 extension declared in `_meta`. */
function mayCreateTask(params: Record<string, unknown> | undefined): boolean {
  if (params === undefined) return false;
  if (params.task !== undefined) return true;
  const meta = params._meta;
  if (!isObject(meta)) return false;
  const capabilities = meta[CLIENT_CAPABILITIES_META];
  return isObject(capabilities) && isObject(capabilities.extensions) && Object.hasOwn(capabilities.extensions, TASKS_EXTENSION);
}

/** What a POST does with tasks: the ids it names, and what of its answer is read. */
export interface TaskUse {
  /** Task ids of `tasks/get` and the like, each to be the caller's own ('' for one that is not a string). */
  named: string[];
  screen?: TaskScreen;
}

/**
 * One pass over a POST's messages; undefined for most (no task named, none asked for, no list). A naming method is
 * checked with or without an id: a backend that runs a `tasks/cancel` sent as a notification must not be reached
 * with another's task either.
 */
export function taskUseOf(post: McpPost): TaskUse | undefined {
  let use: TaskUse | undefined;
  let creating: Set<RequestId> | undefined;
  let listing: Set<RequestId> | undefined;
  for (const message of post.messages) {
    if (!('method' in message)) continue;
    const { method } = message;
    const params = isObject(message.params) ? message.params : undefined;
    if (NAMING_METHODS.has(method)) {
      // A task id that is not a string names no task the gateway bound: refused as unknown (the backend would refuse
      // it as invalid; an id a lenient backend reads as one of its tasks must not pass unchecked).
      (use ??= { named: [] }).named.push(typeof params?.taskId === 'string' ? params.taskId : '');
      continue;
    }
    const id = message.id;
    if (typeof id !== 'string' && typeof id !== 'number') continue;
    if (method === 'tasks/list') (listing ??= new Set()).add(id);
    else if (mayCreateTask(params)) (creating ??= new Set()).add(id);
  }
  if (creating === undefined && listing === undefined) return use;
  (use ??= { named: [] }).screen = { creating: creating ?? new Set(), listing: listing ?? new Set() };
  return use;
}

/** As a backend answers an id it does not know (JSON-RPC invalid params, HTTP 200): never saying whose it is. */
export const taskNotFound = (): McpGatewayError => new McpGatewayError('invalid_request', jsonRpcCodes.invalidParams, 'Task not found', { status: 200 });

export interface TaskBindings {
  /** Binds a task to its creator on `route`; the first binding stands (a replayed answer cannot move a task). */
  bind(route: string, taskId: string, owner: TaskOwner, ttlSeconds: number): Promise<void>;
  /** Throws taskNotFound unless `owner` created the task on `route`. */
  require(route: string, taskId: string, owner: TaskOwner): Promise<void>;
  /** The ids of the tasks `owner` created on `route` that are still bound. */
  owned(route: string, owner: TaskOwner): Promise<ReadonlySet<string>>;
}

const bindingKey = (route: string, taskId: string): string => `${route} ${taskId}`;

export function createTaskBindings(store: Store, now: () => number): TaskBindings {
  return {
    async bind(route, taskId, owner, ttlSeconds) {
      const binding = { subject: owner.subject, clientId: owner.clientId, route, createdAt: now() };
      await createRecord(store, mcpTaskRecord, bindingKey(route, taskId), binding, { ttlSeconds, indexes: { subject: owner.subject } });
    },
    async require(route, taskId, owner) {
      if (taskId === '') throw taskNotFound();
      const binding = await readRecord(store, mcpTaskRecord, bindingKey(route, taskId), { invalid: 'absent' });
      if (binding === undefined || binding.subject !== owner.subject || binding.clientId !== owner.clientId || binding.route !== route) throw taskNotFound();
    },
    async owned(route, owner) {
      const prefix = `${route} `;
      const ids = new Set<string>();
      for (const { key, value } of await findRecords(store, mcpTaskRecord, 'subject', owner.subject, { invalid: 'skip' })) {
        if (value.route === route && value.clientId === owner.clientId && key.startsWith(prefix)) ids.add(key.slice(prefix.length));
      }
      return ids;
    },
  };
}

/** How long a binding lives for a task whose answer says `ttlMs` (null or absent: kept without a limit). */
export function bindingTtlSeconds(ttlMs: unknown): number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs < 0) return TASK_BINDING_MAX_SECONDS;
  return Math.min(TASK_BINDING_MAX_SECONDS, Math.ceil(ttlMs / 1000) + TTL_MARGIN_SECONDS);
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

/**
 * One answer message, screened: a created task bound first (then the message goes on unchanged), a `tasks/list`
 * result cut to the caller's own. A result member a case-insensitive client reads as the list (`Tasks`) is refused:
 * the screen would not have cut it. Returns the message to send: the same object when nothing changed.
 */
async function screenMessage(message: unknown, screen: TaskScreen, bind: (taskId: string, ttlMs: unknown) => Promise<void>, owned: () => Promise<ReadonlySet<string>>): Promise<unknown> {
  if (!isObject(message) || !('result' in message)) return message;
  const id = message.id;
  if (typeof id !== 'string' && typeof id !== 'number') return message;
  if (screen.creating.has(id)) {
    const created = createdTask(message.result);
    if (created !== undefined) await bind(created.taskId, created.ttlMs);
    return message;
  }
  if (!screen.listing.has(id)) return message;
  const result = message.result;
  if (misspeltMember(result, TASKS_SPELLING) !== undefined) {
    throw new ProtocolError('bad_gateway', 'The backend answered tasks/list with member names a client may read otherwise than the gateway, which it cannot screen.');
  }
  if (!isObject(result) || !Array.isArray(result.tasks)) return message;
  const mine = await owned();
  const tasks = result.tasks.filter((task) => isObject(task) && typeof task.taskId === 'string' && mine.has(task.taskId));
  return tasks.length === result.tasks.length ? message : { ...message, result: { ...result, tasks } };
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
  const bind = (taskId: string, ttlMs: unknown) => bindings.bind(route, taskId, owner, bindingTtlSeconds(ttlMs));
  let ownedOnce: Promise<ReadonlySet<string>> | undefined;
  const owned = () => (ownedOnce ??= bindings.owned(route, owner));
  const screenParsed = async (parsed: unknown): Promise<unknown> =>
    Array.isArray(parsed)
      ? Promise.all(parsed.map((message) => screenMessage(message, screen, bind, owned))).then((screened) =>
          screened.every((message, index) => message === parsed[index]) ? parsed : screened,
        )
      : screenMessage(parsed, screen, bind, owned);
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
    if (screen.listing.size > 0 && memberNamesProblem(json, parsed) !== undefined) {
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
