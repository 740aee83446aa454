import { z } from 'zod';
import { defineRecord } from '../store/define-record.ts';

/** The admin console's records (src/admin/): a pending console sign-in, and the server-side half of a session. */

export const consoleSignInRecord = defineRecord({
  namespace: 'console-sign-in',
  owner: 'src/admin/console-sign-in.ts',
  key: 'random nonce (32 bytes, base64url); the upstream sign-in runs with interaction id `console:<nonce>`',
  secretKey: true,
  schema: z.object({ returnTo: z.string() }),
  ttl: '600 s',
  singleUse: true,
  secrets: 'none',
  description: 'Where to return after a console sign-in (an `/admin…` or `/account…` path), consumed when the shared `/callback` completes it.',
});

export const consoleSessionRecord = defineRecord({
  namespace: 'console-session',
  owner: 'src/admin/console-session.ts',
  key: 'random session id (inside the sealed console cookie)',
  secretKey: true,
  schema: z.object({ subject: z.string(), createdAt: z.number(), idToken: z.string().optional(), groups: z.array(z.string()).optional() }),
  ttl: '8 h',
  singleUse: false,
  secrets: '`idToken`: the IdP ID token of the sign-in, sealed (the `id_token_hint` of RP-initiated logout)',
  description:
    'The console session is a sealed cookie whose record must exist: sign-out consumes it, so a copy of the cookie is refused on every replica. The groups of the sign-in (what `admin.groups` is matched against) are kept here, not in the cookie: Entra sends up to 200, and a cookie over 4 KB is dropped by browsers (an endless sign-in loop). An invalid record is an error, never a session.',
});
