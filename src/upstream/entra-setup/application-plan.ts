import type { GraphApplication, PermissionScope, PreAuthorizedApplication, RequiredResourceAccess } from './graph-types.ts';

/**
 * What Gatehouse needs of its app registration, as changes to what is there now. Only additions: redirect URIs,
 * identifier URIs, scopes, pre-authorized clients and permissions someone else added are kept, so running setup again
 * (or after a manual edit in the portal) never takes anything away. An unchanged registration yields no patch, which
 * is what makes the command idempotent.
 */
export const API_SCOPE = 'access_as_user';

export interface DesiredApplication {
  displayName: string;
  redirectUri: string;
  /** Graph delegated permission ids (User.Read, offline_access, …). */
  graphPermissionIds: string[];
  graphAppId: string;
}

export function newApplicationBody(desired: DesiredApplication, scopeId: string): Omit<GraphApplication, 'id' | 'appId'> {
  return {
    displayName: desired.displayName,
    signInAudience: 'AzureADMyOrg',
    web: { redirectUris: [desired.redirectUri] },
    api: { requestedAccessTokenVersion: 2, oauth2PermissionScopes: [apiScope(scopeId)] },
    requiredResourceAccess: [{ resourceAppId: desired.graphAppId, resourceAccess: desired.graphPermissionIds.map((id) => ({ id, type: 'Scope' as const })) }],
  };
}

/** The scope MCP sign-ins ask for, so the upstream token is for Gatehouse itself and can be exchanged on-behalf-of. */
function apiScope(id: string): PermissionScope {
  return {
    id,
    value: API_SCOPE,
    type: 'User',
    isEnabled: true,
    adminConsentDisplayName: 'Access Gatehouse as the signed-in user',
    adminConsentDescription: 'Lets MCP clients call tools through Gatehouse on behalf of the signed-in user.',
    userConsentDisplayName: 'Access Gatehouse as you',
    userConsentDescription: 'Lets MCP clients call tools through Gatehouse on your behalf.',
  };
}

export const identifierUriOf = (appId: string): string => `api://${appId}`;

/**
 * The PATCH body that brings `current` up to `desired`, or undefined when nothing is missing. Complex properties
 * (`web`, `api`) are sent whole, merged with what is there, because Graph replaces a complex property on PATCH.
 */
export function applicationPatch(current: GraphApplication, desired: DesiredApplication, newScopeId: () => string): Partial<GraphApplication> | undefined {
  const patch: Partial<GraphApplication> = {};
  const redirectUris = current.web?.redirectUris ?? [];
  if (!redirectUris.includes(desired.redirectUri)) patch.web = { ...current.web, redirectUris: [...redirectUris, desired.redirectUri] };

  const identifierUris = current.identifierUris ?? [];
  const identifierUri = identifierUriOf(current.appId);
  if (!identifierUris.includes(identifierUri)) patch.identifierUris = [...identifierUris, identifierUri];

  const scopes = current.api?.oauth2PermissionScopes ?? [];
  const hasScope = scopes.some((scope) => scope.value === API_SCOPE);
  if (!hasScope || current.api?.requestedAccessTokenVersion !== 2) {
    patch.api = {
      ...current.api,
      // v2 tokens keep every token on the tenant's v2 issuer, the one Gatehouse's Entra profile expects by default.
      requestedAccessTokenVersion: 2,
      oauth2PermissionScopes: hasScope ? scopes : [...scopes, apiScope(newScopeId())],
    };
  }

  const access = mergeRequiredAccess(current.requiredResourceAccess ?? [], desired);
  if (access) patch.requiredResourceAccess = access;
  return Object.keys(patch).length > 0 ? patch : undefined;
}

function mergeRequiredAccess(current: RequiredResourceAccess[], desired: DesiredApplication): RequiredResourceAccess[] | undefined {
  const graph = current.find((entry) => entry.resourceAppId === desired.graphAppId);
  const present = new Set(graph?.resourceAccess.filter((access) => access.type === 'Scope').map((access) => access.id));
  const missing = desired.graphPermissionIds.filter((id) => !present.has(id));
  if (missing.length === 0) return undefined;
  const added = missing.map((id) => ({ id, type: 'Scope' as const }));
  if (!graph) return [...current, { resourceAppId: desired.graphAppId, resourceAccess: added }];
  return current.map((entry) => (entry === graph ? { ...entry, resourceAccess: [...entry.resourceAccess, ...added] } : entry));
}

/**
 * Clients (e.g. a first-party MCP client's app id) that may obtain the API scope without a consent prompt. A separate
 * PATCH after the scope exists, because Graph rejects a pre-authorization that names a scope id it has not stored yet.
 */
export function preAuthorizationPatch(current: GraphApplication, clientAppIds: readonly string[]): Partial<GraphApplication> | undefined {
  const scopeId = current.api?.oauth2PermissionScopes?.find((scope) => scope.value === API_SCOPE)?.id;
  if (!scopeId || clientAppIds.length === 0) return undefined;
  const existing = current.api?.preAuthorizedApplications ?? [];
  let changed = false;
  const merged: PreAuthorizedApplication[] = existing.map((entry) => {
    if (!clientAppIds.includes(entry.appId) || entry.delegatedPermissionIds.includes(scopeId)) return entry;
    changed = true;
    return { ...entry, delegatedPermissionIds: [...entry.delegatedPermissionIds, scopeId] };
  });
  for (const appId of clientAppIds) {
    if (merged.some((entry) => entry.appId === appId)) continue;
    changed = true;
    merged.push({ appId, delegatedPermissionIds: [scopeId] });
  }
  return changed ? { api: { ...current.api, preAuthorizedApplications: merged } } : undefined;
}

/** What the application looks like after a patch (for the steps that follow it, and for the dry run's placeholder). */
export const applyPatch = (current: GraphApplication, patch: Partial<GraphApplication> | undefined): GraphApplication => ({ ...current, ...patch });
