import { z } from 'zod';
import { defineRecord } from '../store/define-record.ts';

/**
 * What outlives one authorization request in consent: approvals live in the browser's sealed cookie
 * (src/authorization/remembered-decisions.ts); the store keeps only when a person withdrew them for a user.
 */

export const consentWithdrawnRecord = defineRecord({
  namespace: 'consent-withdrawn',
  owner: 'src/authorization/remembered-decisions.ts',
  key: "the user's subject and the client id, joined by a space",
  schema: z.object({ withdrawnAt: z.number() }),
  ttl: '`authorization.consentRememberDays` (no approval remembered before it outlives that)',
  singleUse: false,
  secrets: 'none',
  description:
    "When a person (the user on /account, an operator in the console or CLI) last ended one of the user's grants for the client. An approval a browser remembered before it no longer answers for the user: the consent page is shown again, so a client still running cannot undo the revocation by re-authorizing at once.",
});
