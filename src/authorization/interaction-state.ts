import type { z } from 'zod';
import type {
  consentApprovedRecord,
  consentStateRecord,
  interactionSignedInRecord,
  interactionSignInFailedRecord,
} from '../records/interaction.ts';

/**
 * Short-lived, single-use server-side records that carry an authorization request through consent and the upstream
 * sign-in, declared in src/records/interaction.ts. All are read with `consumeRecord`, so a replayed form post or
 * callback finds nothing.
 */

/**
 * Upstream sign-ins the admin console starts carry this interaction id prefix; `/callback` hands them to the console
 * instead of an oidc-provider interaction (uids never contain `:`).
 */
export const CONSOLE_INTERACTION_PREFIX = 'console:';

/** The bound: a consent form or a sign-in left open longer than this starts again. */
export const CONSENT_STATE_TTL_SECONDS = 600;

/** What the consent form was shown for; the POST must match it exactly. */
export type ConsentStateRecord = z.infer<typeof consentStateRecord.schema>;

/** What the user approved, waiting for the upstream sign-in to finish. */
export type ApprovedConsentRecord = z.infer<typeof consentApprovedRecord.schema>;

export type SignedInRecord = z.infer<typeof interactionSignedInRecord.schema>;

/** The OAuth error an upstream sign-in failure is answered with (RFC 6749 §4.1.2.1), waiting for the browser. */
export type SignInFailedRecord = z.infer<typeof interactionSignInFailedRecord.schema>;

/** The CSRF cookie: the double-submit token, bound to this interaction, client and redirect URI. */
export interface CsrfCookie {
  csrf: string;
  consentState: string;
  uid: string;
  clientId: string;
  redirectUri: string;
  /** Epoch ms the page was shown: the oldest of too many open consent pages' cookies goes first. */
  shownAt?: number;
}

/**
 * How many consent pages a browser keeps open at once, each with its own CSRF cookie (sent on every request, `Path=/`
 * as `__Host-` requires). A page that reloads itself, or a client restarting authorization, added one each time until
 * the browser's Cookie header outgrew what the server reads (431 on every request for ten minutes).
 */
export const MAX_OPEN_CONSENT_PAGES = 5;
