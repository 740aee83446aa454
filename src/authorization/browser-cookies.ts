import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Keyring } from '../keys/keyring.ts';

/**
 * Our own browser cookies (oidc-provider manages its session/interaction cookies itself). Values are sealed with the
 * keyring (AES-256-GCM, the cookie name bound as additional data), which makes them both signed and opaque: a user
 * cannot forge an approval, and one cookie's value cannot be replayed as another.
 *
 * `__Host-` + `Secure` + `Path=/` + no `Domain`: only this exact origin over TLS can set or read them (no subdomain
 * or network attacker can plant a cookie). `HttpOnly`, `SameSite=Lax`: no script access, not sent on cross-site
 * POSTs. The upstream-state cookie is Lax as well: the IdP returns with a top-level GET (`response_mode=query`),
 * which Lax allows; only a `form_post` response mode would need `SameSite=None`, and we never request one.
 */
export type CookieKind = 'csrf' | 'approvals' | 'denials' | 'upstream';

/**
 * A cookie of a kind, optionally one of several of that kind told apart by a key (the consent form's CSRF cookie,
 * one per interaction: a browser may have several consent pages open at once, an editor connecting two servers).
 * Keys are url-safe ids (`[A-Za-z0-9_-]`, at most 64), which are valid in a cookie name.
 */
export type CookieName = CookieKind | { kind: CookieKind; key: string };

export interface BrowserCookies {
  name(cookie: CookieName): string;
  read<T>(request: FastifyRequest, cookie: CookieName): T | undefined;
  write(reply: FastifyReply, cookie: CookieName, value: unknown, maxAgeSeconds: number): void;
  /** A raw (unsealed) value, for the upstream client's own opaque state cookie. */
  readRaw(request: FastifyRequest, cookie: CookieName): string | undefined;
  writeRaw(reply: FastifyReply, cookie: CookieName, value: string, maxAgeSeconds: number): void;
  clear(reply: FastifyReply, cookie: CookieName): void;
  /** The keys of the request's cookies of `kind` that carry one (`{ kind, key }` names). */
  keysOf(request: FastifyRequest, kind: CookieKind): string[];
}

const COOKIE_KEY = /^[A-Za-z0-9_-]{1,64}$/;

/** `app` must have @fastify/cookie registered: its parser and serializer are used (nothing hand-rolled). */
export function createBrowserCookies(options: { keyring: Keyring; secure: boolean; app: FastifyInstance }): BrowserCookies {
  const { keyring, secure, app } = options;
  const name = (cookie: CookieName) => {
    const base = `${secure ? '__Host-' : ''}gatehouse-${typeof cookie === 'string' ? cookie : cookie.kind}`;
    if (typeof cookie === 'string') return base;
    if (!COOKIE_KEY.test(cookie.key)) throw new TypeError('a cookie key is a url-safe id');
    return `${base}-${cookie.key}`;
  };
  const attributes = (maxAge: number) => ({ path: '/', httpOnly: true, sameSite: 'lax' as const, secure, maxAge });
  // The name is bound as additional data: one interaction's cookie cannot be replayed as another's.
  const context = (cookie: CookieName) => `cookie:${name(cookie)}`;

  // Written as plain `Set-Cookie` headers (not via a reply decorator) so they survive when the reply is hijacked and
  // handed to oidc-provider, which appends its own cookies to the same header.
  const setCookie = (reply: FastifyReply, header: string) => {
    reply.header('set-cookie', header);
  };

  const readRaw = (request: FastifyRequest, cookie: CookieName): string | undefined => {
    const value = app.parseCookie(request.headers.cookie ?? '')[name(cookie)];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };

  return {
    name,
    readRaw,
    read<T>(request: FastifyRequest, kind: CookieName): T | undefined {
      const sealed = readRaw(request, kind);
      if (sealed === undefined) return undefined;
      try {
        return JSON.parse(keyring.unseal(sealed, context(kind))) as T;
      } catch {
        // Tampered, sealed for another cookie, or sealed with a key that has been pruned: treat as absent.
        return undefined;
      }
    },
    write(reply, kind, value, maxAgeSeconds) {
      setCookie(reply, app.serializeCookie(name(kind), keyring.seal(JSON.stringify(value), context(kind)), attributes(maxAgeSeconds)));
    },
    writeRaw(reply, kind, value, maxAgeSeconds) {
      setCookie(reply, app.serializeCookie(name(kind), value, attributes(maxAgeSeconds)));
    },
    clear(reply, kind) {
      setCookie(reply, app.serializeCookie(name(kind), '', { ...attributes(0), expires: new Date(0) }));
    },
    keysOf(request, kind) {
      const prefix = `${name(kind)}-`;
      return Object.keys(app.parseCookie(request.headers.cookie ?? ''))
        .filter((cookieName) => cookieName.startsWith(prefix))
        .map((cookieName) => cookieName.slice(prefix.length))
        .filter((key) => COOKIE_KEY.test(key));
    },
  };
}
