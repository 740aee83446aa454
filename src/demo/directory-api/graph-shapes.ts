/**
 * Microsoft Graph's response shapes, as far as the demo directory API answers them: a `user` entity and the error
 * envelope. Kept faithful so the sample server's code is the same against the stand-in and the real Graph.
 * @see https://learn.microsoft.com/graph/api/resources/user
 * @see https://learn.microsoft.com/graph/errors
 */
export interface DirectoryUser {
  /** Matched against the token's `oid`, else `sub` (the local identity provider's subject). */
  id: string;
  displayName: string;
  givenName?: string;
  surname?: string;
  mail?: string;
  userPrincipalName: string;
  jobTitle?: string;
  officeLocation?: string;
  mobilePhone?: string;
  preferredLanguage?: string;
  businessPhones?: string[];
}

export const graphUserContext = 'https://graph.microsoft.com/v1.0/$metadata#users/$entity';

export function graphUser(user: DirectoryUser): Record<string, unknown> {
  return {
    '@odata.context': graphUserContext,
    businessPhones: user.businessPhones ?? [],
    displayName: user.displayName,
    givenName: user.givenName ?? null,
    jobTitle: user.jobTitle ?? null,
    mail: user.mail ?? null,
    mobilePhone: user.mobilePhone ?? null,
    officeLocation: user.officeLocation ?? null,
    preferredLanguage: user.preferredLanguage ?? null,
    surname: user.surname ?? null,
    userPrincipalName: user.userPrincipalName,
    id: user.id,
  };
}

export type GraphErrorCode =
  | 'InvalidAuthenticationToken'
  | 'Authorization_RequestDenied'
  | 'Request_ResourceNotFound'
  | 'BadRequest'
  | 'Request_BadRequest';

export function graphError(code: GraphErrorCode, message: string, requestId: string, date: Date): Record<string, unknown> {
  return {
    error: {
      code,
      message,
      innerError: { date: date.toISOString().replace(/\.\d{3}Z$/, ''), 'request-id': requestId, 'client-request-id': requestId },
    },
  };
}
