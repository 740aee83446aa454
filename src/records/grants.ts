import { z } from 'zod';
import { defineChannel, defineRecord } from '../store/define-record.ts';

/**
 * Grant revocation as the store holds it (src/grants/revoked-grants.ts): a record per revoked grant, the durable
 * truth, and a message on a channel so every replica's in-memory set learns of it within a second.
 */

export const revokedGrantRecord = defineRecord({
  namespace: 'revoked-grant',
  owner: 'src/grants/revoked-grants.ts',
  key: 'grant id',
  schema: z.object({
    grantId: z.string(),
    /** Epoch ms. */
    revokedAt: z.number(),
    /** Why the grant ended (a GrantEndReason, src/grants/grant-end-reason.ts); absent on older records. */
    reason: z.string().optional(),
  }),
  ttl: '`authorization.accessTokenTtlSeconds` + 60 s once the grant\'s records are deleted; `authorization.refreshTokenAbsoluteSeconds` until then (an ending the store interrupted part-way: the grant stays refused)',
  singleUse: false,
  secrets: 'none',
  description:
    "A revoked grant. Each replica keeps the set in memory from the `grant-revoked` subscription and re-reads the namespace's keys every 5 s (which covers messages lost while disconnected); the key is the fact, so its value is not read there.",
});

export const grantRevokedChannel = defineChannel({
  name: 'grant-revoked',
  owner: 'src/grants/revoked-grants.ts',
  message: 'the grant id',
  description: 'Published after each `revoked-grant` record is written.',
});
