/**
 * Every way a grant can end. Each path that ends a grant names itself here and calls `endGrant` (end-grant.ts); a
 * test enumerates the paths against this list, so a new path cannot end a grant some other way unnoticed.
 *
 * | reason                   | who ends it                                   | why                               |
 * |--------------------------|-----------------------------------------------|-----------------------------------|
 * | `code_replay`            | token endpoint, code redeemed twice           | RFC 6749 §4.1.2, RFC 9700 §4.2.4  |
 * | `refresh_reuse`          | token endpoint, rotated refresh token reused  | RFC 9700 §4.14.2                  |
 * | `token_revocation`       | revocation endpoint (refresh or access token) | RFC 7009 §2.1                     |
 * | `admin`                  | admin console or `gatehouse grants revoke`    | operator decision                 |
 * | `account`                | the user, on /account (connected apps)        | user decision                     |
 * | `client_revoked`         | admin revokes a whole client                  | operator decision                 |
 * | `upstream_invalid_grant` | the IdP refused the user's refresh token      | the upstream session behind it ended |
 * | `upstream_step_up`       | the IdP demands a step-up (MFA, CA, consent)  | only a sign-in through the IdP helps |
 */
export const GRANT_END_REASONS = [
  'code_replay',
  'refresh_reuse',
  'token_revocation',
  'admin',
  'account',
  'client_revoked',
  'upstream_invalid_grant',
  'upstream_step_up',
] as const;

export type GrantEndReason = (typeof GRANT_END_REASONS)[number];
