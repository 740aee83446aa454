/**
 * The `account` record (namespace `account`, key = subject): written by the authorization server at each sign-in
 * (src/authorization/account-record.ts), read by the gateway for identity assertions and group-based tool policies
 * (src/proxy/account-cache.ts) and by the admin pages. Declared here, below all three.
 */
export interface AccountRecord {
  subject: string;
  issuer: string;
  name?: string;
  email?: string;
  tenantId?: string;
  groups: string[];
  firstSeenAt: number;
  lastSeenAt: number;
}

export const ACCOUNT_NAMESPACE = 'account';
