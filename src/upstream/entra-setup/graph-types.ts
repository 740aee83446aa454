/** The parts of Microsoft Graph v1.0 resources that `gatehouse entra setup` reads and writes. */

export interface PermissionScope {
  id: string;
  value: string;
  type?: 'User' | 'Admin';
  isEnabled?: boolean;
  adminConsentDisplayName?: string;
  adminConsentDescription?: string;
  userConsentDisplayName?: string;
  userConsentDescription?: string;
}

export interface PreAuthorizedApplication {
  appId: string;
  delegatedPermissionIds: string[];
}

export interface RequiredResourceAccess {
  resourceAppId: string;
  resourceAccess: { id: string; type: 'Scope' | 'Role' }[];
}

export interface GraphApplication {
  id: string;
  appId: string;
  displayName?: string;
  signInAudience?: string;
  identifierUris?: string[];
  web?: { redirectUris?: string[]; [key: string]: unknown };
  api?: {
    requestedAccessTokenVersion?: number | null;
    oauth2PermissionScopes?: PermissionScope[];
    preAuthorizedApplications?: PreAuthorizedApplication[];
    [key: string]: unknown;
  };
  requiredResourceAccess?: RequiredResourceAccess[];
}

export interface GraphServicePrincipal {
  id: string;
  appId: string;
  displayName?: string;
  oauth2PermissionScopes?: PermissionScope[];
}

export interface FederatedIdentityCredential {
  id?: string;
  name: string;
  issuer: string;
  subject: string;
  audiences: string[];
  description?: string;
}

export interface OAuth2PermissionGrant {
  id: string;
  clientId: string;
  consentType: 'AllPrincipals' | 'Principal';
  resourceId: string;
  principalId?: string | null;
  scope: string;
}

/** Microsoft Graph's own application id, the same in every tenant. */
export const MICROSOFT_GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';
/** Audience of every federated credential Entra accepts as a client assertion (public cloud). */
export const TOKEN_EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange';
