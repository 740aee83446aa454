/**
 * The redirect URIs a client may register, whatever way it registers (DCR, CIMD document, configuration):
 * - `https:` anywhere;
 * - `http:` only on a loopback host (`127.0.0.1`, `[::1]`, `localhost`) — native apps listen on an ephemeral port,
 *   and the port is ignored when matching loopback URIs (RFC 8252 §7.3, §8.3);
 * - a private-use URI scheme of a native app (`cursor://…`, `com.example.app:/cb`; RFC 8252 §7.1), unless the
 *   scheme is one a browser or the operating system gives another meaning: script-capable or local schemes
 *   (`javascript:`, `data:`, `file:`, `vbscript:`, `blob:`, …) turn an authorization response into XSS or a local
 *   file read, network and messaging schemes (`ftp:`, `ws:`, `mailto:`, `tel:`, …) send it somewhere else, browser
 *   and OS handler schemes (`chrome:`, `intent:`, `ms-msdt:`, …) reach privileged code;
 * - never a fragment (RFC 6749 §3.1.2), never credentials.
 *
 * Matching at authorization time is exact (oidc-provider compares strings), except for the loopback port.
 */

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** RFC 3986 §3.1: `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`. */
const SCHEME_SYNTAX = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** Schemes that are not an app's own, lower case, without the colon. */
const RESERVED_SCHEMES = new Set([
  // script-capable or local content
  'javascript', 'vbscript', 'data', 'blob', 'file', 'filesystem', 'about', 'view-source', 'jar', 'resource',
  // network protocols a browser or OS opens itself
  'http', 'https', 'ws', 'wss', 'ftp', 'ftps', 'sftp', 'gopher', 'telnet', 'ssh', 'ldap', 'ldaps', 'news', 'nntp',
  'irc', 'ircs', 'smb', 'nfs', 'webdav', 'dav',
  // messaging and telephony
  'mailto', 'tel', 'sms', 'smsto', 'mms', 'callto', 'sip', 'sips', 'xmpp', 'facetime', 'facetime-audio',
  // browser internals and extensions
  'chrome', 'chrome-extension', 'chrome-untrusted', 'devtools', 'edge', 'brave', 'opera', 'vivaldi', 'moz-extension',
  'safari-extension', 'ms-browser-extension',
  // operating-system handlers known to reach privileged code (Android intents, Windows help and shell handlers)
  'intent', 'android-app', 'content', 'shell', 'hcp', 'its', 'mk', 'res', 'search', 'search-ms', 'x-apple-systempreferences',
]);

export function isLoopbackRedirectHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname);
}

/**
 * An http loopback redirect URI as written: a literal loopback host, an optional port, then the rest verbatim.
 * Nothing is parsed, so nothing is normalised: `http://2130706433/cb` (decimal 127.0.0.1), `/x/../cb`, percent-encoded
 * or whitespace variants are not the registered string and never match it (RFC 9700 §4.1.3: exact string matching).
 */
const LITERAL_LOOPBACK = /^(http):\/\/(127\.0\.0\.1|\[::1\]|localhost)(?::(\d{1,5}))?([/?].*)?$/is;

/**
 * `http://127.0.0.1:53210/cb?x` → `http://127.0.0.1/cb?x`: the string with only its port removed, for comparing a
 * requested loopback redirect URI with a registered one on any port (RFC 8252 §7.3); undefined for anything that is
 * not a literal http loopback URI.
 */
export function loopbackWithoutPort(uri: string): string | undefined {
  if (/[\s\p{Cc}#]/u.test(uri)) return undefined;
  const match = LITERAL_LOOPBACK.exec(uri);
  if (match === null) return undefined;
  const [, scheme, host, port, rest = ''] = match;
  if (port !== undefined && Number(port) > 65_535) return undefined;
  return `${scheme}://${host}${rest}`;
}

/**
 * Whether two redirect URIs are one place for consent: the same string, or loopback URIs that differ only in the port
 * (RFC 8252 §7.3: a native app listens on whatever port is free, and the authorization server matches any). An
 * approval bound to the port asked again at every start of a client that picks a new one each time.
 */
export function sameRedirectTarget(a: string, b: string): boolean {
  if (a === b) return true;
  const loopback = loopbackWithoutPort(a);
  return loopback !== undefined && loopback === loopbackWithoutPort(b);
}

/**
 * True for a redirect URI with a private-use scheme an app may claim (RFC 8252 §7.1). Windows `ms-*` handlers are all
 * refused: several of them run code from a URL (CVE-2022-30190, `ms-msdt:`).
 */
export function isPrivateUseRedirectUri(uri: string): boolean {
  if (!SCHEME_SYNTAX.test(uri)) return false;
  const scheme = uri.slice(0, uri.indexOf(':')).toLowerCase();
  return !RESERVED_SCHEMES.has(scheme) && !scheme.startsWith('ms-');
}

/** Returns why `uri` is not an acceptable redirect URI, or undefined when it is. */
export function redirectUriProblem(uri: unknown): string | undefined {
  if (typeof uri !== 'string') return 'redirect_uris must be strings';
  const url = URL.parse(uri);
  if (url === null || !SCHEME_SYNTAX.test(uri)) return `${uri.slice(0, 100)} is not an absolute URI`;
  // The URL parser drops tabs and newlines, so the string matched later would differ from the one checked here.
  if (/[\s\p{Cc}]/u.test(uri)) return 'redirect URIs must not contain whitespace or control characters';
  if (uri.includes('#')) return 'redirect URIs must not contain a fragment';
  if (url.username !== '' || url.password !== '') return 'redirect URIs must not contain credentials';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') {
    // The host must be written as a loopback name, not merely parse to one (`http://2130706433/`, `http://127.1/`).
    return loopbackWithoutPort(uri) !== undefined ? undefined : 'http redirect URIs are only allowed on loopback hosts (127.0.0.1, [::1], localhost)';
  }
  if (isPrivateUseRedirectUri(uri)) return undefined;
  return `the ${url.protocol.slice(0, -1)} scheme is not allowed for redirect URIs`;
}

/** The first problem among a client's redirect URIs, if any. */
export function redirectUrisProblem(uris: unknown): string | undefined {
  if (uris === undefined) return undefined;
  if (!Array.isArray(uris)) return 'redirect_uris must be an array';
  for (const uri of uris) {
    const problem = redirectUriProblem(uri);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** A client with a private-use redirect URI is a native app (OIDC Registration §2 `application_type`). */
export function hasPrivateUseRedirectUri(uris: unknown): boolean {
  return Array.isArray(uris) && uris.some((uri) => typeof uri === 'string' && isPrivateUseRedirectUri(uri));
}
