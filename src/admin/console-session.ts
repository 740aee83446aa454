import { fastifyCookie } from '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Keyring } from '../keys/keyring.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import type { UpstreamIdentity } from '../upstream/types.ts';


/**
 * The console's sign-in session: one cookie sealed with the keyring (AES-256-GCM, the cookie name bound as
 * additional data), so it is signed and opaque; `HttpOnly`, `SameSite=Lax`, and `Secure` + `__Host-` unless
 * `dev.insecureCookies` on an http://localhost public URL. It lives 8 hours at most (the expiry is inside the sealed
 * value too, so a cookie kept past its Max-Age is still refused). The CSRF token for the console's forms is part of
 * the session: a form field must echo it (double submit, compared in constant time).
 */
export interface ConsoleSession {
  subject: string;
  name?: string;
  email?: string;
  groups: string[];
  /** Per-session CSRF token, echoed by every form. */
  csrf: string;
  /** Epoch ms. */
  expiresAt: number;
}

export const CONSOLE_SESSION_SECONDS = 8 * 3600;

export interface ConsoleSessions {
  readonly cookieName: string;
  read(request: FastifyRequest): ConsoleSession | undefined;
  start(reply: FastifyReply, identity: UpstreamIdentity): ConsoleSession;
  end(reply: FastifyReply): void;
}

export function createConsoleSessions(options: { keyring: Keyring; clock: Clock; random: Random; secure: boolean }): ConsoleSessions {
  const { keyring, clock, random, secure } = options;
  const cookieName = secure ? '__Host-gatehouse-console' : 'gatehouse-console';
  const context = `cookie:${cookieName}`;
  const attributes = { path: '/', httpOnly: true, sameSite: 'lax' as const, secure };

  return {
    cookieName,
    read(request) {
      const sealed = fastifyCookie.parse(request.headers.cookie ?? '')[cookieName];
      if (typeof sealed !== 'string' || sealed === '') return undefined;
      try {
        const session = JSON.parse(keyring.unseal(sealed, context)) as ConsoleSession;
        return session.expiresAt > clock.now() ? session : undefined;
      } catch {
        // Tampered, from another cookie, or sealed with a pruned key: signed out.
        return undefined;
      }
    },
    start(reply, identity) {
      const session: ConsoleSession = {
        subject: identity.subject,
        ...(identity.name === undefined ? {} : { name: identity.name }),
        ...(identity.email === undefined ? {} : { email: identity.email }),
        groups: identity.groups,
        csrf: random.token(),
        expiresAt: clock.now() + CONSOLE_SESSION_SECONDS * 1000,
      };
      const value = keyring.seal(JSON.stringify(session), context);
      reply.header('set-cookie', fastifyCookie.serialize(cookieName, value, { ...attributes, maxAge: CONSOLE_SESSION_SECONDS }));
      return session;
    },
    end(reply) {
      reply.header('set-cookie', fastifyCookie.serialize(cookieName, '', { ...attributes, maxAge: 0, expires: new Date(0) }));
    },
  };
}

/** Whether this signed-in user may use /admin: listed by subject or email, or in a listed group. */
export function isConsoleAdmin(session: ConsoleSession, admin: { users: string[]; groups: string[] }): boolean {
  const email = session.email?.toLowerCase();
  if (admin.users.some((user) => user === session.subject || (email !== undefined && user.toLowerCase() === email))) return true;
  return session.groups.some((group) => admin.groups.includes(group));
}
