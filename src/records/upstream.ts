import { z } from 'zod';
import { defineRecord } from '../store/define-record.ts';

/** The upstream sign-in's records (src/upstream/): the pending sign-in, and the user's sealed upstream tokens. */

export const upstreamStateRecord = defineRecord({
  namespace: 'upstream-state',
  owner: 'src/upstream/sign-in-state.ts',
  key: 'the upstream `state` value (32 random bytes, base64url)',
  secretKey: true,
  schema: z.object({
    interactionId: z.string(),
    /** RFC 7636 §4.1: 64 characters of base64url (48 random bytes), above the 43-character minimum. */
    codeVerifier: z.string(),
    nonce: z.string(),
    /** SHA-256 of the browser-binding cookie value. */
    browserBindingHash: z.string(),
    createdAt: z.number(),
    /** The `claims` request sent with this sign-in (a step-up the IdP asked for), if any. */
    claims: z.string().optional(),
    /** The fresh login the client demanded (`prompt=login`, `max_age` seconds): checked against the ID token's `auth_time`. */
    reauthenticate: z.object({ prompt: z.literal('login').optional(), maxAge: z.number().optional() }).optional(),
  }),
  ttl: '600 s',
  singleUse: true,
  secrets:
    "the browser-binding cookie only as its SHA-256; `codeVerifier` and `nonce` plain (useless without the IdP's code, gone within 10 minutes)",
  description:
    "The upstream leg's `state`, PKCE verifier and nonce, bound to the browser that started the sign-in: a callback replayed, or carried to another browser (login CSRF, RFC 6749 §10.12), finds no record or the wrong cookie.",
});

export const upstreamTokensRecord = defineRecord({
  namespace: 'upstream-tokens',
  owner: 'src/upstream/token-vault.ts',
  key: "the user's Gatehouse subject",
  schema: z.object({ v: z.literal(1), sealed: z.string(), savedAt: z.number() }),
  ttl: "the IdP's `refresh_token_expires_in` (at most a year), else 90 days; without a refresh token, until the access token expires; deleted when a person ends the user's last grant",
  singleUse: false,
  secrets: '**sealed** (`{ accessToken, refreshToken?, idToken?, expiresAt, obtainedAt?, scope? }`), context `upstream-tokens:<subject>`',
  description:
    'The user\'s upstream tokens, read by the broker for on-behalf-of and refresh. A record that does not open (its key was pruned, tampered) is deleted; one that does not match its schema reads as absent: either way the remedy is a new sign-in.',
});
