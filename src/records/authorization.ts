import { z } from 'zod';
import { defineCounter, defineRecord } from '../store/define-record.ts';

/**
 * The authorization server's own records beside oidc-provider's (src/store/oidc-records.ts): refresh-token rotation
 * and its retry window, the code exchanges that finished, the redirect URIs a grant was approved for, and the dynamic-registration rate limit.
 */

export const refreshRotatedRecord = defineRecord({
  namespace: 'refresh-rotated',
  owner: 'src/authorization/adapter-hooks.ts',
  key: "SHA-256 of the rotated refresh token's id",
  schema: z.object({ at: z.number() }),
  ttl: '15 minutes, or `authorization.refreshReuseGraceSeconds` if longer (not written when that is 0): a rotation the store failed part-way through may be finished by a retry that long',
  singleUse: false,
  secrets: 'key hashed',
  description:
    'When a refresh token was rotated (epoch ms), written with `setIfAbsent` when it is consumed: of two parallel refreshes with one token exactly one creates it, and a retry inside the grace window is tolerated instead of revoking the grant; past it, only a rotation that never recorded its successor (the store failed part-way, the client was answered 503) may still be retried. An invalid record reads as absent: no tolerance, the reuse is treated as a replay.',
});

export const refreshSuccessorRecord = defineRecord({
  namespace: 'refresh-successor',
  owner: 'src/authorization/refresh-retry.ts',
  key: "SHA-256 of the rotated refresh token's id",
  schema: z.object({ sealed: z.string() }),
  ttl: 'as `refresh-rotated`: its presence says the rotation finished',
  singleUse: false,
  secrets: 'key hashed; the successor refresh token **sealed** (AES-256-GCM, the key bound as additional data)',
  description:
    'The refresh token the first rotation issued, written with `setIfAbsent`: a retry (or the loser of a parallel refresh) gets this one instead of the token it minted, so there is only ever one chain. An invalid record reads as absent (the retry is refused).',
});

export const codeExchangedRecord = defineRecord({
  namespace: 'code-exchanged',
  owner: 'src/authorization/code-exchange-retry.ts',
  key: "SHA-256 of the authorization code's id",
  // `by`: a random id of the exchange that wrote it (absent in records written before it was kept), so an exchange
  // whose write had an unknown outcome (a lost reply) can tell its own record from another's.
  schema: z.object({ at: z.number(), by: z.string().optional() }),
  ttl: "the code's whole lifetime (`authorization.authorizationCodeTtlSeconds`) plus a second, from the exchange: as long as the code's `oidc:consumed` marker",
  singleUse: false,
  secrets: 'key hashed',
  description:
    'When a code exchange finished (epoch ms), written with `setIfAbsent` once the token response is ready and before it is sent: a consumed code without it was never answered with tokens (the store failed part-way, the client was told 503), so its retry finishes the exchange instead of ending the grant as a replay. Of two exchanges racing, the one that does not create it ends the grant. An invalid record reads as present (fail closed: the retry is a replay).',
});

export const grantRedirectUrisRecord = defineRecord({
  namespace: 'grant-redirect-uris',
  owner: 'src/authorization/approved-redirects.ts',
  key: 'grant id',
  schema: z.object({ redirectUris: z.array(z.string()).max(20) }),
  ttl: "`authorization.refreshTokenAbsoluteSeconds` (the grant's lifetime)",
  singleUse: false,
  secrets: 'none',
  description:
    "The redirect URIs (at most 20) the user approved the grant for, written after consent; the consent prompt asks again when the record lacks the request's redirect URI. An invalid record reads as absent, which asks again.",
});

export const registrationRateCounter = defineCounter({
  namespace: 'registration-rate',
  owner: 'src/authorization/registration-limit.ts',
  key: '`<hour>:<address>`: the clock hour (epoch ms / 3 600 000, floored) and the client IP address as Fastify resolved it (`trustProxy`); `unknown-address` when there is none, one shared budget',
  ttl: '7200 s (the window plus one, for clock skew between replicas)',
  description:
    'Dynamic registrations per address and hour. One beyond `authorization.dynamicRegistration.perIpPerHour` (`perLoopbackIpPerHour` for a loopback peer, when set) gets `429` with `Retry-After`. The IP address is plain.',
});

export const appOnlyTokenRecord = defineRecord({
  namespace: 'app-only-token',
  owner: 'src/authorization/grants/client-credentials.ts',
  key: "the token's grant id (`app-<jti>`, src/protocol/app-only.ts)",
  schema: z.object({
    clientId: z.string(),
    /** The MCP server (RFC 8707 resource) the token is for: the route its end is audited under. Absent on older records. */
    resource: z.string().optional(),
  }),
  ttl: '`authorization.accessTokenTtlSeconds`: the token\'s own life',
  indexes: ['client'],
  singleUse: false,
  secrets: 'none: the id is revocable, not a credential',
  description:
    'A live app-only access token (client credentials, a workload token), under its client. Such a token has no grant record to list: revoking its client (console, CLI) finds it here and ends it by its grant id.',
});

export const clientGrantedRecord = defineRecord({
  namespace: 'client-granted',
  owner: 'src/authorization/adapter-hooks.ts',
  key: 'the client id',
  schema: z.object({
    /** Epoch ms of the last grant saved for the client. */
    at: z.number(),
  }),
  ttl: "`authorization.refreshTokenAbsoluteSeconds` (the longest a grant saved then lives) plus a day, from the last grant saved",
  indexes: [],
  singleUse: false,
  secrets: 'none',
  description:
    'That a user granted the client access, lately: written with every grant saved for it. `gatehouse clients prune` keeps a dynamic registration while this lives, so one whose only grant ended a minute ago (disconnected on /account, or at its end of life) is not taken for a registration nobody used.',
});
