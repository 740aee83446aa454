import { isUtf8 } from 'node:buffer';
import { foldedCollision, foldedName, memberNamesProblem, memberSpellings, misspeltMember } from '../protocol/duplicate-members.ts';
import { JSONRPC, McpGatewayError } from './gateway-error.ts';

/**
 * Reading and checking the JSON-RPC body of an MCP POST. The gateway reads the body only on POSTs to MCP routes —
 * it needs the method and tool name for per-tool policy and audit — through the server's one body reader
 * (src/server/request-body.ts: capped, with a deadline), so an oversized body costs at most `limit` bytes of memory.
 *
 * The shape is checked by hand rather than with zod: this runs on every proxied POST, the shape is four small
 * object forms, and a zod union cost several microseconds per message (bench/micro.ts). The check accepts exactly
 * what this zod schema accepts (test/proxy/mcp-message.test.ts compares the two over every combination of fields):
 *
 *   requestId = z.union([z.string(), z.number().int()])
 *   z.union([
 *     z.object({ jsonrpc: z.literal('2.0'), id: requestId, method: z.string().min(1), params: z.record(z.string(), z.unknown()).optional() }),
 *     z.object({ jsonrpc: z.literal('2.0'), method: z.string().min(1), params: z.record(z.string(), z.unknown()).optional() }),
 *     z.object({ jsonrpc: z.literal('2.0'), id: requestId.nullable(), result: z.unknown(), method: z.never().optional() }),
 *     z.object({ jsonrpc: z.literal('2.0'), id: requestId.nullable(), error: z.object({ code: z.number(), message: z.string() }).loose(), method: z.never().optional() }),
 *   ])
 *
 * A message with a `method` is a request or nothing. A `tools/call` with array `params` and a `result` read as a
 * response: no policy looked at it, and it was forwarded as it came, which a backend reads as the request it is.
 */
type RequestId = string | number;
export type JsonRpcMessage =
  | { jsonrpc: '2.0'; id?: RequestId; method: string; params?: Record<string, unknown> }
  | { jsonrpc: '2.0'; id: RequestId | null; result?: unknown }
  | { jsonrpc: '2.0'; id: RequestId | null; error: { code: number; message: string; [key: string]: unknown } };

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
/**
 * A JSON-RPC id as the gateway and every backend read it alike: a string of whole characters, or an integer exact in
 * a double. An id with a lone surrogate came back from a backend that replaces it (Go's U+FFFD) as an id no request of
 * the POST had, and its answer passed the task screen unscreened (another user's tasks in a tasks/list).
 */
const isRequestId = (value: unknown): value is RequestId => (typeof value === 'string' ? value.isWellFormed() : Number.isSafeInteger(value));

/**
 * A method name with white space or an invisible character in it: `tools/call ` or `tools/call\u0000` is no method
 * a server defines, and policy keyed on `tools/call` would not see it, while a backend that trims or stops at a NUL
 * would run it as one.
 */
const UNREADABLE_METHOD = /[\s\p{Default_Ignorable_Code_Point}\p{Cc}]/u;

/**
 * The methods the gateway judges (per-tool policy, the tools/list screen, task ownership), in lower case. One spelt
 * otherwise in case (`Tools/Call`) is no method a server defines either, and it passed unjudged: a backend routing
 * methods without case (a hand-written server's `EqualFold`) ran it as the call the policy refuses.
 */
const JUDGED_METHODS: ReadonlySet<string> = new Set([
  'tools/call',
  'tools/list',
  'prompts/get',
  'resources/read',
  'tasks/get',
  'tasks/result',
  'tasks/update',
  'tasks/cancel',
  'tasks/list',
  'subscriptions/listen',
]);

/** A method spelt as one the gateway judges in another case, as a case-insensitive match reads it (`toolſ/call` too). */
const judgedInAnotherCase = (method: string): boolean => !JUDGED_METHODS.has(method) && JUDGED_METHODS.has(foldedName(method));

/** The message if it is valid JSON-RPC 2.0 (a request, notification, result or error), else undefined. */
export function checkJsonRpcMessage(item: unknown): JsonRpcMessage | undefined {
  if (!isObject(item) || item.jsonrpc !== '2.0') return undefined;
  const { id, method, params } = item;
  if (typeof method === 'string' && method.length > 0 && !UNREADABLE_METHOD.test(method) && method.isWellFormed() && !judgedInAnotherCase(method) && (params === undefined || isObject(params))) {
    // An id that is no id (an object, a fraction, an integer past 2^53) made the request read as a notification here
    // — judged with no id to answer, its refusal unmatched — while the backend answered it as the request it is.
    return id === undefined || id === null || isRequestId(id) ? (item as JsonRpcMessage) : undefined;
  }
  if ('method' in item) return undefined;
  if (id !== null && !isRequestId(id)) return undefined;
  // A response is read as one even if it also carries a (malformed) method: only its id and outcome are kept.
  if ('result' in item) return { jsonrpc: '2.0', id, result: item.result };
  const { error } = item;
  if (isObject(error) && typeof error.code === 'number' && typeof error.message === 'string') {
    return { jsonrpc: '2.0', id, error: error as { code: number; message: string } };
  }
  return undefined;
}

export interface McpPost {
  messages: JsonRpcMessage[];
  /** The body as received, forwarded unchanged. */
  raw: Buffer;
  /** The single request's method and name (tool, prompt, resource or task), when the body is one request. */
  method?: string;
  name?: string;
  requestId?: string | number;
  /** A batch's request ids, in order (notifications and responses have none to answer). */
  batchRequestIds?: Array<string | number>;
}

/** The tool a message calls, if it is a `tools/call` naming one. */
export function calledTool(message: JsonRpcMessage): string | undefined {
  if (!('method' in message) || message.method !== 'tools/call') return undefined;
  const tool = message.params?.name;
  return typeof tool === 'string' ? tool : undefined;
}

/** Which `params` field `Mcp-Name` mirrors, per method (MCP 2026-07-28, Streamable HTTP standard headers). */
const NAME_SOURCE: Record<string, string> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

/**
 * The members the gateway reads (JSON-RPC's, and the `params` members policy, pinning and `Mcp-Name` judge by): a
 * member spelt otherwise in case is refused, as a case-insensitive parser behind the gateway would read it as one of
 * them (duplicate-members.ts).
 */
const ENVELOPE_MEMBERS = memberSpellings(['jsonrpc', 'id', 'method', 'params', 'result', 'error']);
const PARAMS_MEMBERS = memberSpellings(['name', 'arguments', 'uri', 'cursor', '_meta', 'taskId', 'task', 'notifications']);

/**
 * A message a case-insensitive parser behind the gateway (Go's `encoding/json`, as mcp-go decodes messages) would
 * read as another: two members of one name in different cases where a backend binds a struct (the message, its
 * `params` and their `_meta`), or one of JSON-RPC's or MCP's members spelt in another case (`Method` beside a
 * `result` is a response to the gateway and a `tools/call` to Go). A tool's arguments are the gateway's to judge only
 * where an argument policy reads them, and are checked there (argument-policy.ts): a tool taking a map
 * (`{"PATH":…,"path":…}`, headers) is served as before.
 */
function refuseCaseAmbiguity(message: unknown): void {
  if (!isObject(message)) return;
  const params = isObject(message.params) ? message.params : undefined;
  const ambiguous =
    foldedCollision(message) ??
    misspeltMember(message, ENVELOPE_MEMBERS) ??
    foldedCollision(params) ??
    misspeltMember(params, PARAMS_MEMBERS) ??
    foldedCollision(params?._meta);
  if (ambiguous !== undefined) {
    throw new McpGatewayError('invalid_request', JSONRPC.invalidRequest, 'A member of the message is named twice in different cases, or spelt in another case than JSON-RPC and MCP name it.');
  }
}

export function parseMcpPost(raw: Buffer): McpPost {
  // Decoded with replacement characters, `"secret_tool\xff"` was judged as `secret_tool\uFFFD` (no policy's name) and
  // forwarded as sent, to a backend whose decoder may drop the byte and run `secret_tool` (RFC 8259 §8.1: UTF-8).
  if (!isUtf8(raw)) throw new McpGatewayError('invalid_request', JSONRPC.parseError, 'The request body is not valid UTF-8.');
  let json: unknown;
  const text = raw.toString('utf8');
  try {
    json = JSON.parse(text);
  } catch {
    throw new McpGatewayError('invalid_request', JSONRPC.parseError, 'The request body is not valid JSON.');
  }
  // The body is forwarded as received: what the gateway judged must be what any parser behind it reads.
  const names = memberNamesProblem(text, json);
  if (names === 'duplicate') {
    throw new McpGatewayError('invalid_request', JSONRPC.invalidRequest, 'An object of the message names one member twice (RFC 8259 §4).');
  }
  if (names === 'misread') {
    throw new McpGatewayError('invalid_request', JSONRPC.invalidRequest, 'A member name written with escapes could not be read as written: send member names unescaped.');
  }
  const list = Array.isArray(json) ? json : [json];
  for (const item of list) refuseCaseAmbiguity(item);
  if (list.length === 0) throw new McpGatewayError('invalid_request', JSONRPC.invalidRequest, 'An empty JSON-RPC batch is not allowed.');
  const messages: JsonRpcMessage[] = [];
  for (const item of list) {
    const message = checkJsonRpcMessage(item);
    if (!message) throw new McpGatewayError('invalid_request', JSONRPC.invalidRequest, 'The body is not a valid JSON-RPC 2.0 message.');
    // Per-tool policy and pinning judge the tool by its name: one that is not a string was passed by both unjudged,
    // and a backend that looks handlers up by `params.name` turns `["delete_all"]` into "delete_all".
    // A name with a lone surrogate (`"secret_tool\ud800"`) is another name to policy and may be secret_tool to a
    // backend that drops what it cannot encode.
    if ('method' in message && message.method === 'tools/call' && (typeof message.params?.name !== 'string' || message.params.name === '' || !message.params.name.isWellFormed())) {
      throw new McpGatewayError('invalid_request', JSONRPC.invalidParams, 'A tools/call needs the tool\'s name in params.name: a non-empty string of whole Unicode characters.');
    }
    messages.push(message);
  }
  const post: McpPost = { messages, raw };
  if (Array.isArray(json)) {
    // A refusal of the batch answers each of its requests by id (JSON-RPC 2.0 §6), so none waits for its timeout.
    post.batchRequestIds = messages.flatMap((message) => ('method' in message && 'id' in message && isRequestId(message.id) ? [message.id] : []));
    // Answers are matched to requests by id, by the client and by the gateway's screens (a tools/list or tasks/list
    // filtered, a task bound): two requests of one id made one answer pass as the other's, unscreened.
    if (new Set(post.batchRequestIds).size !== post.batchRequestIds.length) {
      throw new McpGatewayError('invalid_request', JSONRPC.invalidRequest, 'Two requests of the batch share an id; each request needs its own.');
    }
  }
  const only = !Array.isArray(json) ? messages[0] : undefined;
  if (only && 'method' in only) {
    post.method = only.method;
    const field = Object.hasOwn(NAME_SOURCE, only.method) ? NAME_SOURCE[only.method] : undefined;
    const value = field ? only.params?.[field] : undefined;
    if (typeof value === 'string') post.name = value;
    // A request whose id is not a valid id is a notification (zod's union read it so, dropping the id).
    const id: unknown = 'id' in only ? only.id : undefined;
    if (isRequestId(id)) post.requestId = id;
  }
  return post;
}

const BASE64_PREFIX = '=?base64?';
const BASE64_SUFFIX = '?=';

/** `Mcp-Name` values outside visible ASCII travel as `=?base64?…?=` (MCP 2026-07-28). */
export function decodeMcpHeaderValue(value: string): string | undefined {
  if (value.startsWith(BASE64_PREFIX) && value.endsWith(BASE64_SUFFIX)) {
    const encoded = value.slice(BASE64_PREFIX.length, -BASE64_SUFFIX.length);
    // Strictly: Node's decoder skips characters outside the alphabet, so `ZW!!Nob*w==` read as `echo` here while a
    // stricter reader behind the gateway might read it otherwise, or refuse it. Undefined: not a value at all.
    if (!STRICT_BASE64.test(encoded)) return undefined;
    // Bytes that are not UTF-8 decode to U+FFFD here and to something else (or nothing) elsewhere: no value either.
    const bytes = Buffer.from(encoded, 'base64');
    return isUtf8(bytes) ? bytes.toString('utf8') : undefined;
  }
  return value;
}

/** RFC 4648 §4 base64, padded, nothing else. */
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The 2026-07-28 transport mirrors the method and name into headers so intermediaries can route and authorize
 * without the body. A gateway that enforces policy on one and forwards the other would be bypassable (header says
 * `echo`, body calls `secret_tool`), so when both are present they must agree.
 *
 * @see MCP 2026-07-28 basic/transports — standard request headers; a mismatch is HTTP 400 with -32020.
 */
export function checkMirroredHeaders(post: McpPost, headers: { method?: string; name?: string }): void {
  const mismatch = (which: string) =>
    new McpGatewayError('invalid_request', JSONRPC.headerMismatch, `The ${which} header does not match the request body.`);
  if (headers.method !== undefined && headers.method !== post.method) throw mismatch('Mcp-Method');
  if (headers.name === undefined) return;
  const name = decodeMcpHeaderValue(headers.name);
  if (name === undefined || name !== post.name) throw mismatch('Mcp-Name');
}
