import type { Transform } from 'node:stream';
import { ProtocolError } from '../errors/protocol-error.ts';
import { sseEventTransform, type SseEvent } from './sse-events.ts';
import { foldPolicyName } from '../protocol/tool-names.ts';
import { foldedCollision, memberNamesProblem, memberSpellings, misspeltMember } from '../protocol/duplicate-members.ts';

/**
 * The tools a `tools/list` answer leaves out for one caller: those named, and, where the route's default policy
 * refuses this caller whatever the arguments, every tool the route does not name (the default decides those).
 */
export interface DeniedTools {
  names: ReadonlySet<string>;
  /** The route's tool names: every other tool is denied. Absent unless the route's default refuses this caller. */
  allButNamed?: ReadonlySet<string>;
}

export const NO_TOOLS_DENIED: DeniedTools = { names: new Set() };

export const deniesNone = (denied: DeniedTools): boolean => denied.names.size === 0 && denied.allButNamed === undefined;

/**
 * Removes tools the caller may not call from `tools/list` results, so clients do not offer the model tools that
 * would be refused. Applied only when some tool is denied to this caller; otherwise responses stream untouched.
 * Works on a JSON body and on an SSE stream (event by event; comments and other events pass through at once).
 *
 * An answer the screen cannot read is not let through unscreened: a client may read what the gateway could not (a
 * `fetch` `.json()` skips a leading byte order mark, which `JSON.parse` refuses), and the tools it lists would then
 * reach the client and its model unfiltered and unreviewed. A JSON body is read as a client reads it (a leading BOM
 * skipped) and is a 502 if it still does not parse; an SSE event that does not parse is left out of the stream.
 */
export function filterToolsResult(message: unknown, denied: DeniedTools): unknown {
  if (!message || typeof message !== 'object') return message;
  const result = (message as { result?: unknown }).result;
  if (!result || typeof result !== 'object') return message;
  const tools = (result as { tools?: unknown }).tools;
  if (!Array.isArray(tools)) return message;
  // Compared as the call check compares them (tool-policy.ts, policyNameFor): a listed `SECRET_TOOL` is the denied
  // `secret_tool`'s look-alike, refused when called, so it is not offered either.
  const deniedFolded = new Set([...denied.names].map(foldPolicyName));
  const namedFolded = denied.allButNamed === undefined ? undefined : new Set([...denied.allButNamed].map(foldPolicyName));
  const isDenied = (name: string) => {
    const folded = foldPolicyName(name);
    return deniedFolded.has(folded) || (namedFolded !== undefined && !namedFolded.has(folded));
  };
  // A tool whose name a case-insensitive client reads from another member (`"Name"`) is not offered: the screen
  // cannot tell which tool it is.
  const kept = tools.filter(
    (tool) => !(tool && typeof tool === 'object' && (isDenied(String((tool as { name?: unknown }).name)) || misspeltMember(tool, NAME_SPELLING) !== undefined)),
  );
  return { ...message, result: { ...result, tools: kept } };
}

/** A JSON body as a client reads it: UTF-8 with a leading byte order mark skipped (WHATWG "UTF-8 decode"). */
function parseAnswer(text: string): unknown {
  try {
    return parseJsonText(text);
  } catch {
    throw new ProtocolError('bad_gateway', 'The backend answered with a body that is not JSON.');
  }
}

function parseJsonText(text: string): unknown {
  return JSON.parse(withoutBom(text));
}

const withoutBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

/**
 * Whether another client may read `text` otherwise than this parse (`parsed`) did, so the screen cannot vouch for it:
 * a message spelling its list otherwise (misspeltListing), a member named twice (which one a parser keeps varies) or
 * a name written with escapes that V8 misread (duplicate-members.ts). The screen decides by the parse and passes the
 * backend's bytes on when they carry no list: `{"x":{"a":0,"tool\\":0},"result":{"a":0,"tool\u0073":[…]}}` was no
 * list to V8 and `result.tools` to Python's `json`.
 */
const readOtherwise = (text: string, parsed: unknown): boolean =>
  someMessage(parsed, misspeltListing) || memberNamesProblem(withoutBom(text), parsed) !== undefined;

/** `test` over a parsed answer's messages: a batch (a JSON array, 2025-03-26) or one message. */
const someMessage = (parsed: unknown, test: (message: unknown) => boolean): boolean => (Array.isArray(parsed) ? parsed.some(test) : test(parsed));
const carriesList = (message: unknown): boolean => toolsOf(message) !== undefined;

/**
 * An event's data parsed, `undefined` for one that carries no message (an empty `data`, as a priming event for
 * resumability has), or `unreadable` for one the screen cannot read: such an event is left out of the stream.
 */
function parseEventData(data: string): unknown {
  if (data.trim() === '') return undefined;
  try {
    return parseJsonText(data);
  } catch {
    return unreadable;
  }
}

const unreadable = Symbol('unreadable');

export function filterToolsListJson(body: Buffer, denied: DeniedTools): Buffer {
  const parsed = parseAnswer(body.toString('utf8'));
  const filtered = Array.isArray(parsed) ? parsed.map((m) => filterToolsResult(m, denied)) : filterToolsResult(parsed, denied);
  return Buffer.from(JSON.stringify(filtered));
}

/**
 * A `tools/list` result carried by one SSE event, filtered; any other event is returned as it is. An event may carry a
 * batch of answers (a JSON array, 2025-03-26): each is filtered, as in a JSON body.
 */
export function filterToolsListEvent(event: SseEvent, denied: DeniedTools): SseEvent | null {
  const parsed = parseEventData(event.data);
  if (parsed === unreadable) return null;
  if (parsed === undefined) return event;
  if (Array.isArray(parsed)) {
    const filtered = parsed.map((message) => filterToolsResult(message, denied));
    return filtered.every((message, index) => message === parsed[index]) ? event : { ...event, data: JSON.stringify(filtered) };
  }
  const filtered = filterToolsResult(parsed, denied);
  return filtered === parsed ? event : { ...event, data: JSON.stringify(filtered) };
}

export function toolsListSseFilter(denied: DeniedTools): Transform {
  return sseEventTransform((event) => filterToolsListEvent(event, denied));
}

/** Looks at the tools of a `tools/list` result (pinned definitions) and names more tools to remove. */
export type ReviewTools = (tools: readonly unknown[]) => Promise<ReadonlySet<string>>;

const RESULT_SPELLING = memberSpellings(['result']);
const TOOLS_SPELLING = memberSpellings(['tools']);
const NAME_SPELLING = memberSpellings(['name']);

/**
 * A message a case-insensitive client (Go's `encoding/json`, as mcp-go decodes answers) may read as a `tools/list`
 * result where the screen, reading `result.tools` exactly, sees none: `"Result"`, `"TOOLS"`. Honest servers never
 * write them; such a message is not passed on (an SSE event is left out, a JSON answer is a 502).
 */
function misspeltListing(message: unknown): boolean {
  if (misspeltMember(message, RESULT_SPELLING) !== undefined) return true;
  const result = message && typeof message === 'object' ? (message as { result?: unknown }).result : undefined;
  return misspeltMember(result, TOOLS_SPELLING) !== undefined;
}

const toolsOf = (message: unknown): unknown[] | undefined => {
  const result = message && typeof message === 'object' ? (message as { result?: unknown }).result : undefined;
  const tools = result && typeof result === 'object' ? (result as { tools?: unknown }).tools : undefined;
  return Array.isArray(tools) ? tools : undefined;
};

/**
 * Under pinning, a tool whose definition a case-insensitive client would read otherwise than the gateway pinned it:
 * a definition field in another case (`Description` beside or instead of `description`: Go's `encoding/json` reads
 * the last of the two), or two members of one name in different cases. Pinning compares canonical JSON, which sorts
 * members: the backend could swap two such members' order and change what a Go client reads without a new hash.
 */
function ambiguousTools(tools: readonly unknown[]): string[] {
  return tools.flatMap((tool) => {
    if (!tool || typeof tool !== 'object' || typeof (tool as { name?: unknown }).name !== 'string') return [];
    return misspeltMember(tool, TOOL_FIELDS) !== undefined || foldedCollision(tool) !== undefined ? [(tool as { name: string }).name] : [];
  });
}

const TOOL_FIELDS = memberSpellings(['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations', '_meta', 'icons']);

/** filterToolsResult, with the tools `review` names removed as well (and, under pinning, ambiguous ones). */
export async function screenToolsResult(message: unknown, denied: DeniedTools, review: ReviewTools | undefined): Promise<unknown> {
  const tools = toolsOf(message);
  if (tools === undefined) return message;
  const blocked = review ? new Set([...(await review(tools)), ...ambiguousTools(tools)]) : new Set<string>();
  if (blocked.size === 0) return deniesNone(denied) ? message : filterToolsResult(message, denied);
  return filterToolsResult(message, { ...denied, names: new Set([...denied.names, ...blocked]) });
}

/**
 * A JSON answer, screened: the same bytes when no message in it carries a `tools/list` result (a tool's result is not
 * parsed and written again, which would round its numbers past 2^53 and respell its text), else the screened messages.
 */
export async function screenToolsListJson(body: Buffer, denied: DeniedTools, review: ReviewTools | undefined): Promise<Buffer> {
  const text = body.toString('utf8');
  const parsed = parseAnswer(text);
  if (readOtherwise(text, parsed)) {
    throw new ProtocolError('bad_gateway', 'The backend answered with member names a client may read otherwise than the gateway, which it cannot screen.');
  }
  if (!someMessage(parsed, carriesList)) return body;
  const screened = Array.isArray(parsed)
    ? await Promise.all(parsed.map((message) => screenToolsResult(message, denied, review)))
    : await screenToolsResult(parsed, denied, review);
  return Buffer.from(JSON.stringify(screened));
}

/**
 * A `tools/list` result carried by one SSE event, screened; any other event is returned at once (no wait). Every
 * event is parsed: a key spelled with JSON escapes (`"\u0074ools"`) is still `tools`.
 */
export function screenToolsListEvent(event: SseEvent, denied: DeniedTools, review: ReviewTools | undefined): SseEvent | null | Promise<SseEvent | null> {
  const parsed = parseEventData(event.data);
  if (parsed === unreadable) return null;
  if (parsed !== undefined && readOtherwise(event.data, parsed)) return null;
  // A batch of answers in one event (a JSON array, 2025-03-26): each screened, as in a JSON body. Read only as single
  // messages, an array passed unscreened — denied tools listed, nothing pinned, a changed description let through.
  if (Array.isArray(parsed)) {
    if (!parsed.some(carriesList)) return event;
    return Promise.all(parsed.map((message) => screenToolsResult(message, denied, review))).then((screened) =>
      screened.every((message, index) => message === parsed[index]) ? event : { ...event, data: JSON.stringify(screened) },
    );
  }
  if (toolsOf(parsed) === undefined) return event;
  return screenToolsResult(parsed, denied, review).then((screened) => (screened === parsed ? event : { ...event, data: JSON.stringify(screened) }));
}

export const screenToolsListSseEvent =
  (denied: DeniedTools, review: ReviewTools | undefined) =>
  (event: SseEvent): SseEvent | null | Promise<SseEvent | null> =>
    screenToolsListEvent(event, denied, review);
