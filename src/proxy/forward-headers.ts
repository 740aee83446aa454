import type { IncomingHttpHeaders } from 'node:http';

/**
 * Which request and response headers cross the gateway.
 *
 * @see RFC 9110 §7.6.1 — hop-by-hop headers (and any named in `Connection`) are not forwarded.
 * The client's `Authorization` and `Cookie` are never forwarded: the backend gets the gateway's identity assertion
 * instead, so a backend (or anything it calls) can never replay the client's token (the confused-deputy problem the
 * MCP security best practices call "token passthrough").
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  // `Expect: 100-continue` is between the client and the gateway (Node answered it); forwarded, undici refuses the
  // whole request ("expect header not supported") and the client would get a 502 for a header it may send.
  'expect',
]);

/**
 * Who the client is, and which host and scheme it asked for, is said only by the gateway: a client that sends its own
 * `X-Real-IP` or `True-Client-IP` would otherwise pick the address a backend logs, rate-limits or allow-lists
 * (IP spoofing through the proxy). Every such header a proxy or CDN is known to set is dropped, and so is every
 * family in PROXY_ONLY; the gateway then writes its own from what it saw (and what `server.trustProxy` trusts).
 * URL and host overrides (`X-Original-URL`, `X-Host`) are dropped for the same reason: a backend honouring them would
 * serve another path or host than the one the gateway authorized.
 */
const CLIENT_ADDRESS_AND_TARGET = [
  'forwarded',
  'x-real-ip',
  'true-client-ip',
  'x-client-ip',
  'client-ip',
  'x-cluster-client-ip',
  'cf-connecting-ip',
  'cf-connecting-ipv6',
  'cf-pseudo-ipv4',
  'fastly-client-ip',
  'akamai-client-ip',
  'x-azure-clientip',
  'x-azure-socketip',
  'x-appengine-user-ip',
  'x-envoy-external-address',
  'x-original-forwarded-for',
  'x-originating-ip',
  'x-remote-ip',
  'x-remote-addr',
  'x-proxyuser-ip',
  'x-host',
  'x-original-host',
  'x-original-url',
  'x-rewrite-url',
  'x-override-url',
  // Method overrides: a backend honouring one would run another method (a DELETE) than the request the gateway judged.
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-method',
  // Which scheme the client used (Tornado's `xheaders`, Werkzeug, IIS): a client claiming https to a backend that
  // trusts it; the gateway says it in `X-Forwarded-Proto` and `Forwarded`.
  'x-scheme',
  'x-url-scheme',
  'front-end-https',
];

/**
 * Families of headers only a proxy in front of a backend sets, matched by name, so a client cannot send its own:
 * - every `X-Forwarded*` (`X-Forwarded-For`, `-Host`, `-User`, `-Email`, and a bare `X-Forwarded`) and `Forwarded-For`;
 * - who an authenticating proxy says the user is: oauth2-proxy (`X-Auth-Request-*`), Apache and nginx (`Remote-User`,
 *   `X-Remote-*`, `X-WebAuth-*`), Azure App Service Easy Auth (`X-MS-Client-Principal*`, `X-MS-Token-*`), Google IAP
 *   (`X-Goog-Authenticated-*`, `X-Goog-IAP-*`), AWS ALB (`X-Amzn-OIDC-*`), Cloudflare Access (`Cf-Access-*`),
 *   Pomerium, Vouch, and the generic `X-Authenticated-*`, `X-Auth-User`, `X-Auth-Email`, `X-User`, `X-Email`: a REST API
 *   moved behind the gateway from such a proxy still trusts them, and any token holder could name themselves `admin`;
 * - a client certificate a TLS-terminating proxy checked (`X-SSL-Client-*`, `SSL-Client-*`, `X-Client-Cert*`,
 *   `X-Client-Verify`, `X-ARR-ClientCert`);
 * - Envoy's internal headers (`X-Envoy-*`: `X-Envoy-Original-Path`, `X-Envoy-Internal`) and `X-Original-*` overrides.
 * The gateway's own word on who is calling is its identity assertion, in `Authorization`.
 */
const PROXY_ONLY =
  /^(?:x-forwarded|forwarded-|x-auth-request-|remote-user|x-remote-|x-webauth-|x-ms-client-principal|x-ms-token-|x-goog-authenticated-|x-goog-iap-|x-amzn-oidc-|cf-access-|x-pomerium-|x-vouch-|x-authenticated-|x-auth-user|x-auth-email|x-user$|x-email$|x-ssl-client|ssl-client|x-client-cert|x-client-verify|x-arr-clientcert|x-envoy-|x-original-)/;

const NEVER_FORWARDED = new Set([
  ...HOP_BY_HOP,
  ...CLIENT_ADDRESS_AND_TARGET,
  'authorization',
  // The client's DPoP proof (RFC 9449) is bound to the gateway's URL and the client's token, neither of which the
  // backend sees; it is the client's credential, not the backend's.
  'dpop',
  'cookie',
  'host',
  'content-length',
  // Compressed bodies could not be inspected (tools/list filtering); the loopback hop gains nothing from them.
  'accept-encoding',
  // W3C Baggage is whatever the client chose to write (`user=admin`): a backend reading it as context from the
  // gateway would trust the client. Trace ids (`traceparent`, `tracestate`) carry no claims and pass.
  'baggage',
]);

/**
 * Headers the gateway reads and judges under their own spelling, which spelt with underscores would reach a CGI or WSGI
 * backend as the same header unjudged: the body's own (`Content_Encoding`: the gateway read the body by another), and
 * MCP's — `Mcp_Session_Id` naming another user's session skipped the session-owner check (the gateway saw no session
 * id at all), `Mcp_Name` another tool than the one the policy allowed, `Last_Event_ID` another stream's events. Only
 * these names: MCP's `Mcp-Param-*` headers may hold `_` in their own names (`Mcp-Param-tenant_id`), and pass.
 */
const JUDGED_BY_THE_GATEWAY = /^(?:content-|(?:mcp-session-id|mcp-name|mcp-method|mcp-protocol-version|last-event-id)$)/;

const NONE: ReadonlySet<string> = new Set();

/** A header name as CGI and WSGI servers read it: `_` and `-` alike (both become `_` in `HTTP_…`). */
const cgiName = (name: string): string => (name.includes('_') ? name.replaceAll('_', '-') : name);

function connectionListed(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): ReadonlySet<string> {
  const value = headers.connection;
  // Per request, on the hot path: the common `keep-alive` (or no header) names nothing to drop beyond hop-by-hop.
  if (value === undefined || value === 'keep-alive' || value === 'close') return NONE;
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(text.split(',').map((name) => name.trim().toLowerCase().replaceAll('_', '-')).filter(Boolean));
}

export interface ForwardedFor {
  /**
   * The client first, then each proxy up to the gateway's peer: a trusted proxy's chain (if `server.trustProxy`
   * trusts it) plus the peer; only the peer when no proxy is trusted. Empty when the peer closed its connection
   * before its address was read (Node then no longer knows it).
   */
  addresses: readonly string[];
  /** `http` or `https`, as the client reached the gateway. */
  protocol: string;
  host: string;
}

export function backendRequestHeaders(
  incoming: IncomingHttpHeaders,
  forwarded: ForwardedFor,
  authorization: string,
): Record<string, string> {
  const listed = connectionListed(incoming);
  const out: Record<string, string> = {};
  // Object.keys, not Object.entries: per request, one array instead of one more per header.
  for (const name of Object.keys(incoming)) {
    const value = incoming[name];
    if (value === undefined) continue;
    // Judged as a CGI or WSGI server reads the name (`HTTP_X_FORWARDED_USER` from `X-Forwarded-User` and from
    // `X_Forwarded_User` alike: Python's wsgiref, Werkzeug, PHP, older gunicorn and Puma): with `_` for `-`, every
    // header dropped here reached such a backend spelt with underscores, `X_Forwarded_User: admin` included. So did
    // `Content_Encoding` and its kin, read there as the body's own (`HTTP_CONTENT_ENCODING`) while the gateway,
    // reading `Content-Encoding`, judged the body by another.
    const read = cgiName(name);
    if (NEVER_FORWARDED.has(read) || listed.has(read) || PROXY_ONLY.test(read)) continue;
    if (read !== name && JUDGED_BY_THE_GATEWAY.test(read)) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const { addresses, protocol, host } = forwarded;
  // No address at all: the client went away before its address was read (see `ForwardedFor`); `Forwarded` says
  // `unknown` (RFC 7239 §6.3) and the de-facto headers are left out rather than sent empty.
  if (addresses.length > 0) out['x-forwarded-for'] = addresses.join(', ');
  out['x-forwarded-proto'] = protocol;
  out['x-forwarded-host'] = host;
  if (addresses[0] !== undefined) out['x-real-ip'] = addresses[0];
  out.forwarded = forwardedHeader(forwarded);
  // The client's Accept-Encoding stays behind, and no Accept-Encoding means any coding will do (RFC 9110 §12.5.3):
  // a backend could then compress what the gateway must read, or pick a coding the client cannot decode.
  out['accept-encoding'] = 'identity';
  out.authorization = authorization;
  return out;
}

/**
 * The same facts as RFC 7239 `Forwarded`, one element per hop; an IPv6 node and the host are quoted (§4, §6).
 * @see RFC 7239 §4, §5
 */
export function forwardedHeader({ addresses, protocol, host }: ForwardedFor): string {
  let header = addresses.length === 0 ? 'for=unknown' : '';
  for (const address of addresses) header += `${header === '' ? '' : ', '}for=${forwardedNode(address)}`;
  const last = `host=${forwardedQuoted(host)};proto=${protocol}`;
  return header === '' ? last : `${header};${last}`;
}

const forwardedNode = (address: string) => (address.includes(':') ? `"[${address}]"` : address);
// A host rarely holds a quote or a backslash: the replace (and its pattern) runs only when one does.
const forwardedQuoted = (value: string) => (value.includes('"') || value.includes('\\') ? `"${value.replace(/["\\]/g, '\\$&')}"` : `"${value}"`);

/**
 * What a backend's answer may not say for the gateway's origin: its cookies, and the policies that hold for every
 * page and endpoint of the origin — the consent page and the console too — which are the gateway's to set: HSTS (a
 * backend's `max-age=0` switched it off), CORS (a backend's `Access-Control-Allow-Origin: *` beside the gateway's
 * own), `Alt-Svc` (another host to reach this origin at), `Clear-Site-Data` (the gateway's sign-in cookies),
 * `Service-Worker-Allowed` (a worker whose scope is the whole origin, the consent page's path included), network
 * error and report collection for the origin (`NEL`, `Report-To`, `Reporting-Endpoints`: a third party told of every
 * failed sign-in for up to a year), the origin's login status (`Set-Login`), its client hints (`Accept-CH`,
 * `Critical-CH`), its agent cluster (`Origin-Agent-Cluster`) and prefetch rules (`Speculation-Rules`). The
 * authentication answers are the gateway's (`WWW-Authenticate`, dropped in relay-response.ts; `Authentication-Info`;
 * `DPoP-Nonce`, whose backend value replaced the gateway's nonce and failed the client's next proof). And what names
 * the backend's software or its network for nobody's benefit (`Server`, `X-Powered-By`, `Via`).
 */
const RESPONSE_DROPPED = new Set([
  ...HOP_BY_HOP,
  'content-length',
  'set-cookie',
  'strict-transport-security',
  'alt-svc',
  'clear-site-data',
  'service-worker-allowed',
  'nel',
  'report-to',
  'reporting-endpoints',
  'set-login',
  'accept-ch',
  'critical-ch',
  'origin-agent-cluster',
  'speculation-rules',
  'authentication-info',
  'dpop-nonce',
  'server',
  'x-powered-by',
  'via',
]);
const CORS_PREFIX = 'access-control-';

/** Response headers passed back to the client; `content-length` is dropped because bodies may be rewritten (a plain HTTP route, which rewrites none, keeps it: relay-response.ts). */
export function clientResponseHeaders(backend: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionListed(backend);
  const out: Record<string, string | string[]> = {};
  for (const name of Object.keys(backend)) {
    const value = backend[name];
    if (value === undefined || RESPONSE_DROPPED.has(name) || listed.has(cgiName(name)) || name.startsWith(CORS_PREFIX)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * Whether a `Content-Encoding` value names a coding (gzip, br …) rather than none or `identity`. The gateway reads
 * MCP messages as they are, both ways: a coded request is refused (read-mcp-post.ts), and a coded answer it must read
 * is a 502 (relay-response.ts `isContentCoded`).
 */
export function namesContentCoding(value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  const text = (Array.isArray(value) ? value.join(',') : value).trim().toLowerCase();
  return text !== '' && text !== 'identity';
}
