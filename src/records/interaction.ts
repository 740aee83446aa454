import { z } from 'zod';
import { defineRecord } from '../store/define-record.ts';

/**
 * Short-lived, single-use records that carry one authorization request through consent and the upstream sign-in
 * (src/authorization/). All are read with `consume`, so a replayed form post or callback finds nothing; an invalid
 * one is an error (GH_RECORD_INVALID), never a consent or sign-in taken on trust. No secrets: the CSRF token is in a
 * cookie, not here.
 */

const TTL = '600 s (`CONSENT_STATE_TTL_SECONDS`)';

const approvedConsent = z.object({
  clientId: z.string(),
  redirectUri: z.string(),
  /** The resource indicator as requested (the key oidc-provider checks the grant under; see consent-request.ts). */
  resource: z.string(),
  scopes: z.array(z.string()),
  oidcScopes: z.array(z.string()),
  /**
   * When the browser's remembered approval that stood in for the page was made (epoch ms; 0 for one made before
   * this was kept); absent when the user approved the page itself. Rechecked once the sign-in names the user.
   */
  rememberedAt: z.number().optional(),
});

export const consentStateRecord = defineRecord({
  namespace: 'consent-state',
  owner: 'src/authorization/consent-routes.ts',
  key: 'random `consent_state` (32 bytes, base64url)',
  secretKey: true,
  schema: approvedConsent.extend({ uid: z.string() }),
  ttl: TTL,
  singleUse: true,
  secrets: 'none',
  description: "What the consent page (`GET /interaction/:uid`) was shown for; consumed by the consent form's POST, which must match it exactly.",
});

export const consentApprovedRecord = defineRecord({
  namespace: 'consent-approved',
  owner: 'src/authorization/consent-routes.ts',
  key: 'interaction uid',
  schema: approvedConsent,
  ttl: TTL,
  singleUse: true,
  secrets: 'none',
  description:
    'What the user approved (the consent state without `uid`), waiting for the upstream sign-in; consumed by `GET /interaction/:uid/signed-in` (src/authorization/finish-sign-in.ts) or discarded by `…/sign-in-failed`.',
});

export const interactionSignedInRecord = defineRecord({
  namespace: 'interaction-signed-in',
  owner: 'src/authorization/finish-sign-in.ts',
  key: 'interaction uid',
  schema: z.object({ subject: z.string() }),
  ttl: TTL,
  singleUse: true,
  secrets: 'none',
  description: 'Written by `GET /callback` after a valid upstream sign-in; consumed by `GET /interaction/:uid/signed-in`.',
});

export const interactionSignInFailedRecord = defineRecord({
  namespace: 'interaction-sign-in-failed',
  owner: 'src/authorization/sign-in-failure.ts',
  key: 'interaction uid',
  schema: z.object({ error: z.enum(['access_denied', 'temporarily_unavailable', 'server_error']), description: z.string() }),
  ttl: TTL,
  singleUse: true,
  secrets: 'none',
  description:
    'The OAuth error (RFC 6749 §4.1.2.1) a failed upstream sign-in is answered with, written by `GET /callback`; consumed by `GET /interaction/:uid/sign-in-failed`.',
});
