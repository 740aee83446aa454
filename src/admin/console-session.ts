import { fastifyCookie } from '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Keyring } from '../keys/keyring.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import type { UpstreamIdentity } from '../upstream/types.ts';
import type { Store } from '../store/store.ts';
import { consoleSessionRecord } from '../records/admin.ts';
import { consumeRecord, readRecord, writeRecord } from '../store/record-access.ts';
import { z } from 'zod';


/**
 * The console's sign-in session: one cookie sealed with the keyring (AES-256-GCM, the cookie name bound as
 * additional data), so it is signed and opaque; `HttpOnly`, `SameSite=Lax`, and `Secure` + `__Host-` unless
 * `dev.insecureCookies` on an http://localhost public URL. It lives 8 hours at most (the expiry is inside the sealed
 * value too, so a cookie kept past its Max-Age is still refused). The CSRF token for the console's forms is part of
 * the session: a form field must echo it (double submit, compared in constant time).
 *
 * A sealed cookie alone cannot be revoked: a copy taken before sign-out would keep working for 8 hours. So each
 * session also has a server-side record (namespace `console-session`, keyed by a random session id inside the
 * cookie); sign-out deletes it, and a cookie whose record is gone is signed out on every replica. Admin rights come
 * from the IdP's groups at sign-in, so they are only as fresh as `verifiedAt`: `/admin` sends the user back through
 * the IdP (silent where the IdP still has a session) once that is older than ADMIN_RECHECK_SECONDS, so removing
 * someone from the admin group takes effect within minutes, not at the end of the 8 hours.
 */
export interface ConsoleSession {
  /** Random id of the server-side record (what sign-out deletes). */
  id: string;
  subject: string;
  name?: string;
  email?: string;
  groups: string[];
  /** Per-session CSRF token, echoed by every form. */
  csrf: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Epoch ms of the sign-in at the IdP the identity and groups come from. */
  verifiedAt: number;
}

export const CONSOLE_SESSION_SECONDS = 8 * 3600;
/** How old the IdP's word on admin rights may be before /admin asks the IdP again. */
export const ADMIN_RECHECK_SECONDS = 5 * 60;

const ID_TOKEN_CONTEXT = 'console-session:id-token';
/** The longest display name kept in the cookie, in characters (pages show 100: web/html.ts). */
const SEALED_NAME_LIMIT = 200;

export interface ConsoleSessions {
  readonly cookieName: string;
  /** The signed-in session, or undefined (no cookie, tampered, expired, or signed out anywhere). */
  read(request: FastifyRequest): Promise<ConsoleSession | undefined>;
  start(reply: FastifyReply, identity: UpstreamIdentity, idToken?: string): Promise<ConsoleSession>;
  /**
   * Ends the session server-side (every copy of the cookie stops working) and clears the cookie. Returns the ID token
   * kept from its sign-in, if any, for the IdP's logout.
   */
  end(reply: FastifyReply, session: ConsoleSession): Promise<{ idToken?: string }>;
}

/**
 * What the sealed cookie holds: the session without its groups, which live in the server-side record (a user in many
 * groups made a cookie over the 4 KB browsers keep, and every sign-in looped back to the IdP). `groups` is still read
 * from a cookie sealed before that, until it expires.
 */
const sessionShape = z.object({
  id: z.string().min(1),
  subject: z.string(),
  name: z.string().optional(),
  email: z.string().optional(),
  groups: z.array(z.string()).optional(),
  csrf: z.string().min(1),
  expiresAt: z.number(),
  verifiedAt: z.number(),
});

export function createConsoleSessions(options: { keyring: Keyring; clock: Clock; random: Random; secure: boolean; store: Store }): ConsoleSessions {
  const { keyring, clock, random, secure, store } = options;
  const cookieName = secure ? '__Host-gatehouse-console' : 'gatehouse-console';
  const context = `cookie:${cookieName}`;
  const attributes = { path: '/', httpOnly: true, sameSite: 'lax' as const, secure };

  function unsealed(request: FastifyRequest): z.infer<typeof sessionShape> | undefined {
    const sealed = fastifyCookie.parse(request.headers.cookie ?? '')[cookieName];
    if (typeof sealed !== 'string' || sealed === '') return undefined;
    try {
      const parsed = sessionShape.safeParse(JSON.parse(keyring.unseal(sealed, context)));
      return parsed.success && parsed.data.expiresAt > clock.now() ? parsed.data : undefined;
    } catch {
      // Tampered, from another cookie, or sealed with a pruned key: signed out.
      return undefined;
    }
  }

  return {
    cookieName,
    async read(request) {
      const session = unsealed(request);
      if (session === undefined) return undefined;
      // The server-side half of the session (src/records/admin.ts); its presence is what keeps the cookie valid.
      const record = await readRecord(store, consoleSessionRecord, session.id);
      if (record === undefined || record.subject !== session.subject) return undefined;
      const { groups: sealedGroups, ...rest } = session;
      return { ...rest, groups: record.groups ?? sealedGroups ?? [] } as ConsoleSession;
    },
    async start(reply, identity, idToken) {
      const now = clock.now();
      // Name and address ride in the cookie: bounded, so an IdP's 10 KB name cannot push it past what browsers keep
      // (an address longer than RFC 5321 allows is none).
      const name = identity.name === undefined ? undefined : Array.from(identity.name).slice(0, SEALED_NAME_LIMIT).join('');
      const session: ConsoleSession = {
        id: random.token(),
        subject: identity.subject,
        ...(name === undefined ? {} : { name }),
        ...(identity.email === undefined || identity.email.length > 254 ? {} : { email: identity.email }),
        groups: identity.groups,
        csrf: random.token(),
        expiresAt: now + CONSOLE_SESSION_SECONDS * 1000,
        verifiedAt: now,
      };
      const record = {
        subject: session.subject,
        createdAt: now,
        groups: session.groups,
        ...(idToken === undefined ? {} : { idToken: keyring.seal(idToken, ID_TOKEN_CONTEXT) }),
      };
      await writeRecord(store, consoleSessionRecord, session.id, record, { ttlSeconds: CONSOLE_SESSION_SECONDS });
      const { groups: _groups, ...sealedPart } = session;
      const value = keyring.seal(JSON.stringify(sealedPart), context);
      reply.header('set-cookie', fastifyCookie.serialize(cookieName, value, { ...attributes, maxAge: CONSOLE_SESSION_SECONDS }));
      return session;
    },
    async end(reply, session) {
      const record = await consumeRecord(store, consoleSessionRecord, session.id);
      reply.header('set-cookie', fastifyCookie.serialize(cookieName, '', { ...attributes, maxAge: 0, expires: new Date(0) }));
      if (record?.subject !== session.subject || typeof record.idToken !== 'string') return {};
      try {
        return { idToken: keyring.unseal(record.idToken, ID_TOKEN_CONTEXT) };
      } catch {
        return {}; // sealed with a pruned key: sign out without the hint
      }
    },
  };
}

/** Whether the IdP's word on this session's groups is too old to grant admin rights without asking again. */
export function adminRightsStale(session: ConsoleSession, now: number): boolean {
  return now - session.verifiedAt > ADMIN_RECHECK_SECONDS * 1000;
}

/** Whether this signed-in user may use /admin: listed by subject or email, or in a listed group. */
export function isConsoleAdmin(session: ConsoleSession, admin: { users: string[]; groups: string[] }): boolean {
  return consoleAdminRefusal(session, admin) === undefined;
}

/**
 * Why this user is not a console admin, for the operator's log (never the page, which names nothing): the subject
 * and email compared with `admin.users`, the groups with `admin.groups`. The commonest cause is a subject written in
 * another format than the one Gatehouse uses (`<issuer>#<sub>`, or `<tid>/<oid>` for Entra) or groups the IdP did not
 * send (see upstream.claims), and this line shows both.
 */
const LOGGED_GROUPS = 20;

export function consoleAdminRefusal(session: ConsoleSession, admin: { users: string[]; groups: string[] }): string | undefined {
  const email = session.email?.toLowerCase();
  if (admin.users.some((user) => user === session.subject || (email !== undefined && user.toLowerCase() === email))) return undefined;
  if (session.groups.some((group) => admin.groups.includes(group))) return undefined;
  if (admin.users.length === 0 && admin.groups.length === 0) return 'admin.users and admin.groups are both empty';
  const who = `subject "${session.subject}"${email === undefined ? ' (no email claim)' : ` and email "${email}"`}`;
  // The first few: a user in thousands of groups (a generic IdP sends them all) made one refusal a line of megabytes.
  const shown = session.groups.slice(0, LOGGED_GROUPS).join(', ');
  const more = session.groups.length > LOGGED_GROUPS ? `, and ${session.groups.length - LOGGED_GROUPS} more` : '';
  const groups = session.groups.length === 0 ? 'the sign-in carried no groups' : `groups [${shown}${more}]`;
  return `${who} not in admin.users; ${groups}, none in admin.groups`;
}
