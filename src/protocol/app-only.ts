/**
 * The private claim that marks an access token issued with no user behind it (client credentials; a workload token):
 * its `sub` is then the client itself (RFC 9068 §2.2), so the gateway must not look up an account for it, must not
 * ask the broker to act on behalf of anyone, and lets tool policies tell such callers apart. Set only by Gatehouse's
 * own authorization server, inside the signed token; a client cannot add it.
 */
export const APP_ONLY_CLAIM = 'app_only';

/**
 * The grant id an app-only token carries in `gid`. Such a token has no grant record; the id is its own (one per
 * token), so RFC 7009 revocation and the admin's `endGrant` still cut it off at every replica.
 */
export const appOnlyGrantId = (tokenId: string): string => `app-${tokenId}`;

/** Whether a grant id is an app-only token's own (appOnlyGrantId): one without a grant record. */
export const isAppOnlyGrantId = (grantId: string): boolean => grantId.startsWith('app-');
