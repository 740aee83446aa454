import { z } from 'zod';
import { defineRecord } from '../store/define-record.ts';

/**
 * The `account` record (key = subject): written by the authorization server at each sign-in
 * (src/authorization/account-record.ts), read by the gateway for identity assertions and group-based tool policies
 * (src/proxy/account-cache.ts) and by the admin pages. Declared here, below all three.
 */
export const accountRecord = defineRecord({
  namespace: 'account',
  owner: 'src/authorization/account-record.ts',
  key: "the user's Gatehouse subject",
  schema: z.object({
    subject: z.string(),
    issuer: z.string(),
    name: z.string().optional(),
    email: z.string().optional(),
    tenantId: z.string().optional(),
    groups: z.array(z.string()),
    /** Epoch ms. */
    firstSeenAt: z.number(),
    lastSeenAt: z.number(),
  }),
  ttl: 'none (kept until deleted)',
  singleUse: false,
  secrets: 'none; name, e-mail and groups are personal data, plain',
  description:
    "Written at every sign-in (`recordSignIn`); read by oidc-provider's `findAccount` (a token is issued only for a subject that signed in through Gatehouse), by the proxy for identity assertions and group-based tool policies (src/proxy/account-cache.ts, cached in memory 30 s), and listed by the admin pages.",
});

export type AccountRecord = z.infer<typeof accountRecord.schema>;
