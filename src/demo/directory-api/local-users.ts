import type { LocalUser } from '../local-idp/users.ts';
import type { DirectoryUser } from './graph-shapes.ts';

/**
 * DEVELOPMENT ONLY — the local identity provider's users as directory entries. The id is the user's object id, which
 * the local IdP puts in `oid` (and `sub`) of the delegated tokens it issues, so `/v1.0/me` finds the signed-in user.
 */
export function directoryUsersFrom(users: readonly LocalUser[]): DirectoryUser[] {
  return users.map((user) => ({
    id: user.id,
    displayName: user.name,
    ...(user.givenName !== undefined ? { givenName: user.givenName } : {}),
    ...(user.surname !== undefined ? { surname: user.surname } : {}),
    mail: user.email,
    userPrincipalName: user.email,
    ...(user.jobTitle !== undefined ? { jobTitle: user.jobTitle } : {}),
    preferredLanguage: 'en-US',
  }));
}
