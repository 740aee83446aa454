import { ProtocolError } from '../errors/protocol-error.ts';
import { foldedName } from '../protocol/duplicate-members.ts';

/**
 * Where a plain HTTP route sends a request: the part of the path below the route, appended to the backend's base
 * path — and never anywhere else on the backend. A backend's base path is a security boundary: the operator exposed
 * `http://api/v1`, not the admin or MCP endpoints next to it on the same origin.
 *
 * The path is decoded exactly once, its dot segments resolved (RFC 3986 §5.2.4), and the result must still lie under
 * the route; the remainder is re-encoded segment by segment, so the backend receives one unambiguous spelling. What
 * different servers read differently is refused instead of guessed at (path-confusion attacks): an encoded `/`, any
 * `\`, control characters (NUL truncates paths in some servers), a `%XX` left after decoding (a backend that decodes
 * again would find `..` there) and a dot segment carrying `;` parameters (`..;/`, which Tomcat and others resolve).
 */
export interface BackendBase {
  /** `http://host:port` */
  origin: string;
  /** The backend URL's path without its trailing slash: `/v1`, or `` for the origin's root. */
  basePath: string;
}

export function backendBase(backendUrl: string): BackendBase {
  const url = new URL(backendUrl);
  return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') };
}

/**
 * @param requestTarget the raw request target as received (`request.url`: path and query, still percent-encoded)
 * @param nestedRoutePaths the paths of the routes under this one, where a resolved path must not lead
 * @throws ProtocolError `invalid_request` (400) when the path leaves the route or is ambiguous
 */
export function backendUrlFor(base: BackendBase, routePath: string, requestTarget: string, nestedRoutePaths: readonly string[] = []): string {
  const queryAt = requestTarget.indexOf('?');
  const rawPath = queryAt === -1 ? requestTarget : requestTarget.slice(0, queryAt);
  const query = queryAt === -1 ? '' : requestTarget.slice(queryAt);
  if (!rawPath.startsWith('/')) throw refused('The request path must be absolute.');
  const { segments, trailingSlash } = resolveSegments(rawPath);
  const routeSegments = routePath.split('/').filter(Boolean);
  if (!routeSegments.every((segment, index) => segments[index] === segment)) {
    throw refused('The request path leaves this route.');
  }
  // The router chose this route from the path as sent; resolved, it may lie under another route nested in this one
  // (`/api/./admin/x`, `/api//admin/x`, `/api/x/../admin/x` for a route at `/api/admin`): its backend would be reached
  // with a token for this route, never checked for that route's audience and scopes. Compared without case too, for
  // a backend that reads paths so (`/api/Admin/x`), and as servers read a segment: without `;` parameters (Tomcat,
  // Jetty, Spring: `/api/admin;x=1/x`), trailing dots and spaces (IIS: `/api/admin./x`), and a segment left empty by
  // that dropped (`/api/;x/admin/x`, which Tomcat merges away as it does `//`).
  if (nestedRoutePaths.length > 0) {
    const read = segments.map(asServersRead).filter((segment) => segment !== '');
    for (const nested of nestedRoutePaths) {
      const nestedSegments = nested.split('/').filter(Boolean);
      if (nestedSegments.every((segment, index) => read[index] === asServersRead(segment))) throw refused('The request path names another route.');
    }
  }
  const below = segments.slice(routeSegments.length).map(encodeSegment);
  let path = base.basePath + below.map((segment) => `/${segment}`).join('');
  if (trailingSlash || path === '') path += '/';
  return `${base.origin}${path}${query}`;
}

/** A path segment as the most lenient server reads it, to compare with a route's: no `;` parameters, no trailing dots or spaces, any case. */
const asServersRead = (segment: string): string => foldedName((segment.split(';', 1)[0] ?? '').replace(/[. ]+$/, ''));

/** Decodes each segment once and resolves `.` and `..`; empty segments (`//`) are merged. */
function resolveSegments(rawPath: string): { segments: string[]; trailingSlash: boolean } {
  const segments: string[] = [];
  let last = '';
  for (const raw of rawPath.slice(1).split('/')) {
    last = decodeSegment(raw);
    if (last === '' || last === '.') continue;
    if (last === '..') {
      if (segments.pop() === undefined) throw refused('The request path leaves this route.');
      continue;
    }
    segments.push(last);
  }
  // `/a/` and `/a/b/..` both name the directory `/a/` (RFC 3986 §5.2.4 keeps the final slash).
  return { segments, trailingSlash: last === '' || last === '.' || last === '..' };
}

function decodeSegment(raw: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw refused('The request path is not valid percent-encoded UTF-8.');
  }
  if (/[/\\]/.test(decoded)) throw refused('The request path contains an encoded slash or a backslash.');
  // oxlint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (/[\u0000-\u001f\u007f]/.test(decoded)) throw refused('The request path contains a control character.');
  if (/%[0-9a-f]{2}/i.test(decoded)) throw refused('The request path is percent-encoded twice.');
  const name = decoded.split(';', 1)[0];
  if (name !== decoded && (name === '.' || name === '..')) throw refused('The request path has a dot segment with parameters.');
  return decoded;
}

/** RFC 3986 §3.3 `pchar`: sub-delimiters, `:` and `@` stay as they are; everything else is percent-encoded. */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/%(24|26|2B|2C|3B|3D|3A|40)/g, (escape) => decodeURIComponent(escape));
}

function refused(description: string): ProtocolError {
  return new ProtocolError('invalid_request', description);
}
