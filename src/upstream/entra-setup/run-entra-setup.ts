import { randomUUID } from 'node:crypto';
import { GatehouseError } from '../../errors/internal-errors.ts';
import { API_SCOPE, applicationPatch, applyPatch, identifierUriOf, newApplicationBody, preAuthorizationPatch, type DesiredApplication } from './application-plan.ts';
import { credentialDiffers, federationPlan, type Federation } from './federation.ts';
import { odataString, type GraphClient } from './graph-client.ts';
import {
  MICROSOFT_GRAPH_APP_ID,
  type FederatedIdentityCredential,
  type GraphApplication,
  type GraphServicePrincipal,
  type OAuth2PermissionGrant,
} from './graph-types.ts';

/**
 * `gatehouse entra setup`: creates or updates Gatehouse's app registration, its service principal, the federated
 * credential of the chosen secretless option and (when asked) the tenant-wide consent to the Graph permissions, then
 * returns the `upstream` section for the config. Each step reads first and writes only what is missing, so a second
 * run sends no write at all. With a dry-run Graph client the writes are printed instead of sent.
 */
export interface EntraSetupSettings {
  displayName: string;
  /** `server.publicUrl`; the redirect URI is this + `/callback`, exactly as Gatehouse sends it. */
  publicUrl: string;
  /** Default: the operator's own tenant (GET /organization). */
  tenantId?: string;
  /** An existing registration to update; default: the one named `displayName`, created when there is none. */
  appId?: string;
  /** Graph delegated permissions by name (User.Read, offline_access, …). */
  graphPermissions: string[];
  preAuthorizedClients: string[];
  federation: Federation;
  grantAdminConsent: boolean;
  authority: string;
}

export interface EntraSetupResult {
  tenantId: string;
  appId: string;
  upstream: Record<string, unknown>;
  adminConsentUrl: string;
  /** Whether the tenant-wide consent to every Graph permission is in place (after this run). */
  consented: boolean;
  notes: string[];
}

const PLACEHOLDER = '00000000-0000-0000-0000-000000000000';

export async function runEntraSetup(graph: GraphClient, settings: EntraSetupSettings, newId: () => string = randomUUID): Promise<EntraSetupResult> {
  const notes: string[] = [];
  const tenantId = settings.tenantId ?? (await operatorTenant(graph));
  const graphPrincipal = await findServicePrincipal(graph, MICROSOFT_GRAPH_APP_ID);
  if (!graphPrincipal) throw new GatehouseError('GH_GRAPH_REQUEST', 'the Microsoft Graph service principal was not found in this tenant');
  const desired: DesiredApplication = {
    displayName: settings.displayName,
    redirectUri: `${settings.publicUrl.replace(/\/+$/, '')}/callback`,
    graphPermissionIds: graphPermissionIds(graphPrincipal, settings.graphPermissions),
    graphAppId: MICROSOFT_GRAPH_APP_ID,
  };

  let application = await findApplication(graph, settings);
  if (!application) {
    const body = newApplicationBody(desired, newId());
    application = await graph.post<GraphApplication>('/applications', body, { ...body, id: PLACEHOLDER, appId: PLACEHOLDER });
    notes.push(`created the app registration "${settings.displayName}"`);
  }
  const app = application;
  const patch = applicationPatch(app, desired, newId);
  if (patch) await graph.patch(`/applications/${app.id}`, patch);
  const patched = applyPatch(app, patch);
  const preAuthorization = preAuthorizationPatch(patched, settings.preAuthorizedClients);
  if (preAuthorization) await graph.patch(`/applications/${app.id}`, preAuthorization);

  const principal = (await findServicePrincipal(graph, app.appId)) ?? (await graph.post<GraphServicePrincipal>('/servicePrincipals', { appId: app.appId }, { id: PLACEHOLDER, appId: app.appId }));
  const clientAuth = await ensureFederatedCredential(graph, app, settings, tenantId, notes);
  const consented = await ensureConsent(graph, principal, graphPrincipal, settings);

  return {
    tenantId,
    appId: app.appId,
    upstream: {
      type: 'entra',
      entra: { tenantId },
      clientId: app.appId,
      clientAuth,
      scopes: ['openid', 'profile', 'email', 'offline_access', `${identifierUriOf(app.appId)}/${API_SCOPE}`],
    },
    adminConsentUrl: `${settings.authority.replace(/\/+$/, '')}/${tenantId}/adminconsent?client_id=${app.appId}`,
    consented,
    notes,
  };
}

async function operatorTenant(graph: GraphClient): Promise<string> {
  const [organization] = await graph.list<{ id: string }>('/organization');
  if (!organization) throw new GatehouseError('GH_GRAPH_REQUEST', 'GET /organization returned no tenant; pass --tenant');
  return organization.id;
}

const byAppId = (appId: string): string => `$filter=${encodeURIComponent(`appId eq ${odataString(appId)}`)}`;

async function findServicePrincipal(graph: GraphClient, appId: string): Promise<GraphServicePrincipal | undefined> {
  if (appId === PLACEHOLDER) return undefined;
  const [found] = await graph.list<GraphServicePrincipal>(`/servicePrincipals?${byAppId(appId)}`);
  return found;
}

async function findApplication(graph: GraphClient, settings: EntraSetupSettings): Promise<GraphApplication | undefined> {
  if (settings.appId) {
    const [found] = await graph.list<GraphApplication>(`/applications?${byAppId(settings.appId)}`);
    if (!found) throw new GatehouseError('GH_GRAPH_REQUEST', `no app registration with application id ${settings.appId} in this tenant`);
    return found;
  }
  const named = await graph.list<GraphApplication>(`/applications?$filter=${encodeURIComponent(`displayName eq ${odataString(settings.displayName)}`)}`);
  if (named.length > 1) {
    throw new GatehouseError('GH_GRAPH_REQUEST', `${named.length} app registrations are named "${settings.displayName}": pass --app-id to choose one`);
  }
  return named[0];
}

function graphPermissionIds(graphPrincipal: GraphServicePrincipal, names: readonly string[]): string[] {
  const scopes = graphPrincipal.oauth2PermissionScopes ?? [];
  return names.map((name) => {
    const scope = scopes.find((candidate) => candidate.value.toLowerCase() === name.toLowerCase());
    if (!scope) throw new GatehouseError('GH_USAGE', `Microsoft Graph has no delegated permission "${name}" (check broker.downstream[].scopes)`);
    return scope.id;
  });
}

async function ensureFederatedCredential(graph: GraphClient, app: GraphApplication, settings: EntraSetupSettings, tenantId: string, notes: string[]): Promise<Record<string, unknown>> {
  let principalId: string | undefined;
  if (settings.federation.kind === 'managed-identity') {
    const identity = await findServicePrincipal(graph, settings.federation.clientId);
    if (!identity) throw new GatehouseError('GH_GRAPH_REQUEST', `no managed identity with client id ${settings.federation.clientId} in this tenant`);
    principalId = identity.id;
  }
  const plan = federationPlan(settings.federation, tenantId, settings.authority, principalId);
  if (plan.note) notes.push(plan.note);
  const path = `/applications/${app.id}/federatedIdentityCredentials`;
  const existing = app.id === PLACEHOLDER ? [] : await graph.list<FederatedIdentityCredential>(path);
  const current = existing.find((credential) => credential.name === plan.credential.name);
  if (!current) {
    await graph.post(path, plan.credential, { ...plan.credential, id: PLACEHOLDER });
  } else if (credentialDiffers(current, plan.credential)) {
    const { name: _name, ...changes } = plan.credential;
    await graph.patch(`${path}/${current.id}`, changes);
  }
  return plan.clientAuth;
}

/**
 * Delegated permissions need consent before the on-behalf-of exchange (which has no browser to ask in, AADSTS65001).
 * With --grant-admin-consent this is the tenant-wide grant an administrator's "Grant admin consent" creates.
 */
async function ensureConsent(graph: GraphClient, client: GraphServicePrincipal, graphPrincipal: GraphServicePrincipal, settings: EntraSetupSettings): Promise<boolean> {
  const wanted = settings.graphPermissions;
  const grants = client.id === PLACEHOLDER ? [] : await graph.list<OAuth2PermissionGrant>(`/oauth2PermissionGrants?$filter=${encodeURIComponent(`clientId eq ${odataString(client.id)}`)}`);
  const grant = grants.find((candidate) => candidate.consentType === 'AllPrincipals' && candidate.resourceId === graphPrincipal.id);
  const granted = new Set((grant?.scope ?? '').split(' ').filter(Boolean).map((scope) => scope.toLowerCase()));
  const missing = wanted.filter((scope) => !granted.has(scope.toLowerCase()));
  if (missing.length === 0) return true;
  if (!settings.grantAdminConsent) return false;
  if (grant) {
    await graph.patch(`/oauth2PermissionGrants/${grant.id}`, { scope: [...(grant.scope ?? '').split(' ').filter(Boolean), ...missing].join(' ') });
  } else {
    const body = { clientId: client.id, consentType: 'AllPrincipals', resourceId: graphPrincipal.id, scope: wanted.join(' ') };
    await graph.post('/oauth2PermissionGrants', body, { ...body, id: PLACEHOLDER });
  }
  return true;
}
