import { pino, stdSerializers, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { compileRedaction } from './log-redaction.ts';

/**
 * The process logger (pino, which Fastify uses natively). Tokens, secrets and cookies must never reach a log line:
 * an access token in a log file is as good as the token itself. Two layers keep them out:
 *  - `redact` paths blank known secret-bearing fields wherever they are logged (headers, token responses, bodies);
 *  - the request serializer logs only method, scrubbed URL and addresses — never headers or bodies — and replaces the
 *    values of sensitive query parameters (`?code=…&state=…` on the OAuth callback, `?access_token=…`).
 * test/server/logger-redaction.test.ts drives real requests carrying secrets and asserts none of them is written.
 */

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where JSON lines go; defaults to stdout. Tests pass a capturing stream. */
  destination?: DestinationStream;
}

/** Field names whose values are secrets wherever they appear (OAuth parameters and token-endpoint responses). */
const secretFields = [
  'access_token',
  'refresh_token',
  'id_token',
  'client_secret',
  'client_assertion',
  'code',
  'code_verifier',
  'password',
  'assertion',
  'subject_token',
  'actor_token',
  'token',
  'authorization',
  'cookie',
];

const redactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  // RFC 9449: a DPoP proof is a credential for its window (another URL's proof is useless, this one is not).
  'req.headers.dpop',
  'headers.dpop',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  ...secretFields.flatMap((field) => [field, `*.${field}`]),
];

/**
 * Query parameters whose values are scrubbed from logged URLs.
 * @see RFC 6749 §4.1.2 (`code` and `state` on the redirect), RFC 6750 §2.3 (`access_token` in the query)
 */
export const sensitiveQueryParameters: ReadonlySet<string> = new Set([
  'code',
  'state',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'client_secret',
  'client_assertion',
  'code_verifier',
  'assertion',
  'subject_token',
  'session_state',
  'password',
  // OpenID Connect request parameters that carry a JWT or who the user is (Core §3.1.2.1, §6).
  'request',
  'id_token_hint',
  'login_hint',
  'login_hint_token',
  'logout_hint',
  'actor_token',
]);

/** A JWS or JWE in compact form, under any parameter name: a credential or a signed statement, never logged. */
const COMPACT_JWT = /^eyJ[\w-]*\.[\w-]*\.[\w-]*(?:\.[\w-]*\.[\w-]*)?$/;

/**
 * The same anywhere inside a value or the path (`?x=Bearer eyJ…`, `/files/eyJ…`): cut out, the rest kept. Only where a
 * token can start (no letter, digit, `_` or `-` before it): without that a path of `eyJeyJeyJ…` was scanned from every
 * position to its end, milliseconds per request before any authentication, and `/surveyJS.min.js` lost its tail.
 */
const JWT_INSIDE = /(?<![\w-])eyJ[\w-]*\.[\w-]*\.[\w-]*(?:\.[\w-]*\.[\w-]*)?/g;

/**
 * A value that carries a sensitive parameter of its own (`?x=1;access_token=…`: some servers split on `;`, and a
 * client that wrapped a token so is still sending it): the whole value is withheld.
 */
const EMBEDDED_NAME = /(?:^|[^A-Za-z0-9_.-])([A-Za-z0-9_.-]+)=/g;

function carriesSecret(text: string): boolean {
  if (!text.includes('=')) return false;
  for (const match of text.matchAll(EMBEDDED_NAME)) if (secretName(match[1]!)) return true;
  return false;
}

export const REDACTED = '[REDACTED]';

/** `text` with every JWS or JWE in compact form inside it cut out (JWT_INSIDE): for values a client chooses. */
export function withoutJwts(text: string): string {
  return text.includes('eyJ') ? text.replace(JWT_INSIDE, REDACTED) : text;
}

/**
 * Names that say their value is a secret, beyond the OAuth ones: a REST API behind a plain HTTP route takes its own
 * (`api_key`, `sig`, `X-Amz-Signature`, `sessionid`, `password`, `privateKey`), whose values were logged as sent.
 * Read with camelCase split into parts (`privateKey` is `private_key`): words anywhere in the name, short ones only as
 * a whole part of it (`key`, `x-key`, `auth_user`, not `keyword` or `author`). Names that only describe a secret or
 * count something (`token_type_hint`, `client_assertion_type`, `max_tokens`, `page_token`) keep their values; a hint
 * other than the token type's is withheld (a password hint often holds the password).
 */
const SECRET_WORDS = /token|secret|passw|passphrase|passcode|pwd|apikey|api_key|credential|signature|session|sessid|assertion|authorization/;
const SECRET_PARTS = /(?:^|[-_.])(?:key|sig|auth|jwt|otp|totp|pin|pass)(?:$|[-_.])/;
const DESCRIBES_A_SECRET = /(?:[-_.](?:type|method|count|size|length|expires|expiry|ttl)|^token[-_.]type[-_.]hint|^(?:max|min)[-_.]tokens?|(?:^|[-_.])page[-_.]token|^(?:public|sort|idempotency)[-_.]key)$/;

function secretName(name: string): boolean {
  // `privateKey` → private_key, `OTPCode` → otp_code, `userPINCode` → user_pin_code.
  const lower = name.replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  if (sensitiveQueryParameters.has(lower)) return true;
  return (SECRET_WORDS.test(lower) || SECRET_PARTS.test(lower)) && !DESCRIBES_A_SECRET.test(lower);
}

/** A sensitive name, also as the last of `;`-separated names (`?x;access_token=…`, read so by some servers). */
function sensitiveName(name: string): boolean {
  return secretName(name) || (name.includes(';') && name.split(';').some((part) => secretName(part.trim())));
}

function scrubValue(value: string): string {
  if (carriesSecret(value) || COMPACT_JWT.test(value)) return REDACTED;
  return encodeURIComponent(value.includes('eyJ') ? value.replace(JWT_INSIDE, REDACTED) : value);
}

/**
 * The longest URL a log line carries. A request line may be as long as the header limit allows (16 KB); past this,
 * the line says how much more there was instead of copying it, so a client cannot make each of its requests a
 * line that log shippers split or drop.
 */
export const MAX_LOGGED_URL_LENGTH = 2048;

/**
 * `/callback?code=abc&state=xyz` → `/callback?code=[REDACTED]&state=[REDACTED]`; other parameters are kept as they
 * were sent (re-encoded, a query of `+` grew threefold in the log), and the whole is cut at MAX_LOGGED_URL_LENGTH.
 */
export function scrubUrl(url: string): string {
  const queryStart = url.indexOf('?');
  const path = queryStart === -1 ? url : url.slice(0, queryStart);
  const scrubbedPath = path.includes('eyJ') ? path.replace(JWT_INSIDE, REDACTED) : path;
  const scrubbed = queryStart === -1 ? scrubbedPath : `${scrubbedPath}?${url.slice(queryStart + 1).split('&').map(scrubParameter).join('&')}`;
  return scrubbed.length <= MAX_LOGGED_URL_LENGTH ? scrubbed : `${scrubbed.slice(0, MAX_LOGGED_URL_LENGTH)}…[${scrubbed.length - MAX_LOGGED_URL_LENGTH} more characters]`;
}

/** One `name=value` of a query: judged decoded (as the server reads it), kept as sent unless something is withheld. */
function scrubParameter(pair: string): string {
  if (pair === '') return pair;
  const [name = '', value = ''] = new URLSearchParams(pair).entries().next().value ?? [];
  const rawName = pair.split('=', 1)[0] ?? '';
  // A token sent as the name (`?eyJ…`, `?eyJ…=`) or a name carrying a parameter of its own (`?a%3Baccess_token%3D…`):
  // the name is judged as a value is.
  const keptName = name.includes('eyJ') || carriesSecret(name) ? scrubValue(name) : rawName;
  // A name alone (`?a%3Baccess_token%3D…`, no `=`) has no value to withhold beyond what the name itself gave up.
  if (sensitiveName(name)) return pair.includes('=') ? `${keptName}=${REDACTED}` : keptName;
  const kept = scrubValue(value);
  if (keptName !== rawName) return pair.includes('=') ? `${keptName}=${kept}` : keptName;
  return kept === REDACTED || value.includes('eyJ') ? `${rawName}=${kept}` : pair;
}

interface LoggableRequest {
  id?: string;
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number } | null;
}

/** What a request looks like in the log: no headers, no body, secrets in the query string scrubbed. */
function serializeRequest(req: LoggableRequest) {
  return {
    id: req.id,
    method: req.method,
    url: typeof req.url === 'string' ? scrubUrl(req.url) : undefined,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

function serializeResponse(res: { statusCode?: number }) {
  return { statusCode: res.statusCode };
}

/**
 * Compiled once (log-redaction.ts), applied to each line's object and to child bindings before serializers run.
 * Not pino's `redact` option: that one re-parses every path for every key of every line.
 */
/**
 * `code` is an OAuth authorization code in a token request, and an error's code on an Error (`ENOENT`,
 * `ECONNREFUSED`, `UND_ERR_HEADERS_TIMEOUT`, `GH_…`): those are kept, or an operator read "[REDACTED]" where the
 * reason a file or a connection failed should be. Only on an Error, and only in the shape of such a code: an
 * upstream IdP's authorization code may be upper-case hex or base32, but it is never an Error's `code`.
 */
const ERROR_CODE = /^[A-Z][A-Z0-9_]{1,39}$/;
const keepErrorCode = (key: string, value: unknown, holder: object): boolean =>
  key === 'code' && holder instanceof Error && (typeof value === 'number' || (typeof value === 'string' && ERROR_CODE.test(value)));

const redact = compileRedaction(redactPaths, REDACTED, keepErrorCode);

/** pino's internal fields (its exported `symbols`) that the request line below reads. */
const symbols = pino.symbols as unknown as Record<
  | 'chindingsSym'
  | 'endSym'
  | 'formattersSym'
  | 'hooksSym'
  | 'lsCacheSym'
  | 'messageKeySym'
  | 'mixinSym'
  | 'msgPrefixSym'
  | 'needsMetadataGsym'
  | 'nestedKeySym'
  | 'serializersSym'
  | 'streamSym'
  | 'stringifiersSym'
  | 'timeSym'
  | 'wildcardFirstSym',
  symbol
>;

/**
 * Whether the request line may be written directly: a pino logger made by createLogger (or a child of one) whose
 * line nothing else shapes — its redaction and serializers, no serializer or pino `redact` path for the line's other
 * fields, no mixin, hook, nested key, message prefix or other message key, and a plain destination.
 */
function writesDirectly(log: Logger): boolean {
  const field = log as unknown as Record<symbol, unknown>;
  const serializers = field[symbols.serializersSym] as Record<string, unknown> | undefined;
  const stringifiers = field[symbols.stringifiersSym] as Record<string | symbol, unknown> | undefined;
  const hooks = field[symbols.hooksSym] as { streamWrite?: unknown; logMethod?: unknown } | undefined;
  const stream = field[symbols.streamSym] as Record<symbol, unknown> | undefined;
  return (
    typeof log.isLevelEnabled === 'function' &&
    serializers !== undefined &&
    stringifiers !== undefined &&
    hooks !== undefined &&
    stream !== undefined &&
    (field[symbols.formattersSym] as { log?: unknown } | undefined)?.log === redact &&
    serializers.req === serializeRequest &&
    serializers.res === serializeResponse &&
    serializers.responseTime === undefined &&
    serializers.msg === undefined &&
    stringifiers.req === undefined &&
    stringifiers.res === undefined &&
    stringifiers.responseTime === undefined &&
    stringifiers.msg === undefined &&
    stringifiers[symbols.wildcardFirstSym] === undefined &&
    !field[symbols.mixinSym] &&
    !hooks.streamWrite &&
    !hooks.logMethod &&
    !field[symbols.nestedKeySym] &&
    !field[symbols.msgPrefixSym] &&
    field[symbols.messageKeySym] === 'msg' &&
    stream[symbols.needsMetadataGsym] !== true
  );
}

/**
 * The one line every request gets when it ends: `log.info({ req, res, responseTime }, 'request completed')`, in the
 * same bytes pino writes for it (test/server/request-log-line.test.ts compares the two), built here because pino's
 * generic path — the redaction walk, a serializer call and a type switch per field, string escaping — cost ≈ 7 µs of
 * the gateway's ≈ 300 µs per request, for a line whose shape never changes. Only a logger made by `createLogger`
 * (its redaction, serializers and message key; no mixin, hook or nested key) takes this path, and redaction has
 * nothing to do on it: the request serializer logs no header and scrubs the query. Any other logger gets pino's call.
 */
export function logRequestCompleted(log: Logger, request: LoggableRequest, reply: { statusCode?: number }, responseTime: number): void {
  if (typeof log.isLevelEnabled === 'function' && !log.isLevelEnabled('info')) return;
  if (!writesDirectly(log)) {
    log.info({ req: request, res: reply, responseTime }, 'request completed');
    return;
  }
  const field = log as unknown as Record<symbol, unknown>;
  const stream = field[symbols.streamSym] as { write(line: string): unknown };
  const levelPrefix = (field[symbols.lsCacheSym] as Record<number, string>)[30];
  const time = (field[symbols.timeSym] as () => string)();
  const status = reply.statusCode === undefined ? '' : `"statusCode":${reply.statusCode}`;
  stream.write(
    `${levelPrefix}${time}${field[symbols.chindingsSym] as string}` +
      `,"req":${JSON.stringify(serializeRequest(request))},"res":{${status}}` +
      `,"responseTime":${Number.isFinite(responseTime) ? responseTime : null},"msg":"request completed"${field[symbols.endSym] as string}`,
  );
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      formatters: { log: redact, bindings: redact },
      serializers: { req: serializeRequest, res: serializeResponse, err: stdSerializers.err },
    },
    options.destination ?? pino.destination({ dest: 1, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS }),
  );
}

/**
 * JSON lines to stdout are buffered: written once 4 KiB are waiting, or every 100 ms, and on exit (pino flushes its
 * buffer synchronously when the process exits). Unbuffered, every request's line cost a write of its own, about 5 %
 * of the gateway's busy time on the benchmark's SSE backend; a line now reaches the collector at most 100 ms late.
 */
const LOG_BUFFER_BYTES = 4096;
const LOG_FLUSH_MS = 100;
