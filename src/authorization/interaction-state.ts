/**
 * Short-lived, single-use server-side records that carry an authorization request through consent and the upstream
 * sign-in. All are read with `store.consume`, so a replayed form post or callback finds nothing.
 */
export const CONSENT_STATE_NAMESPACE = 'consent-state';
export const APPROVED_CONSENT_NAMESPACE = 'consent-approved';
export const SIGNED_IN_NAMESPACE = 'interaction-signed-in';
export const SIGN_IN_FAILED_NAMESPACE = 'interaction-sign-in-failed';

/**
 * Upstream sign-ins the admin console starts carry this interaction id prefix; `/callback` hands them to the console
 * instead of an oidc-provider interaction (uids never contain `:`).
 */
export const CONSOLE_INTERACTION_PREFIX = 'console:';

/** The bound: a consent form or a sign-in left open longer than this starts again. */
export const CONSENT_STATE_TTL_SECONDS = 600;

/** What the consent form was shown for; the POST must match it exactly. */
export interface ConsentStateRecord {
  uid: string;
  clientId: string;
  redirectUri: string;
  /** The resource indicator as requested (the key oidc-provider checks the grant under; see consent-request.ts). */
  resource: string;
  scopes: string[];
  oidcScopes: string[];
}

/** What the user approved, waiting for the upstream sign-in to finish. */
export type ApprovedConsentRecord = Omit<ConsentStateRecord, 'uid'>;

export interface SignedInRecord {
  subject: string;
}

/** The OAuth error an upstream sign-in failure is answered with (RFC 6749 §4.1.2.1), waiting for the browser. */
export interface SignInFailedRecord {
  error: 'access_denied' | 'temporarily_unavailable' | 'server_error';
  description: string;
}

/** The CSRF cookie: the double-submit token, bound to this interaction, client and redirect URI. */
export interface CsrfCookie {
  csrf: string;
  consentState: string;
  uid: string;
  clientId: string;
  redirectUri: string;
}
