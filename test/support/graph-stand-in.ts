import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/**
 * A Microsoft Graph v1.0 stand-in for `gatehouse entra setup` (Graph itself cannot be reached from tests): the same
 * paths and shapes for /organization, /applications (+ /federatedIdentityCredentials), /servicePrincipals and
 * /oauth2PermissionGrants, `$filter=<property> eq '<value>'`, and the refusals of the real service that a careless
 * client runs into: a bearer token is required, unknown properties are rejected, an identifier URI must be
 * `api://<appId>`, a pre-authorization must name a scope the application already has, a federated credential name is
 * unique and immutable, a service principal needs an existing application.
 */
export const GRAPH_SCOPE_IDS: Record<string, string> = {
  'User.Read': 'e1fe6dd8-ba31-4d61-89e7-88639da4683d',
  openid: '37f7f235-527c-4136-accd-4a02d197296e',
  profile: '14dad69e-099b-42c9-810b-d002981feec1',
  email: '64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0',
  offline_access: '7427e0e9-2fba-42fe-b0c0-848c9e6a8182',
  'Mail.Read': '570282fd-fa5c-430d-a7fd-fc8dc98a9dca',
};

type Entity = Record<string, unknown> & { id: string };

export interface GraphStandIn {
  url: string;
  token: string;
  tenantId: string;
  applications: Entity[];
  servicePrincipals: Entity[];
  federatedCredentials: Map<string, Entity[]>;
  grants: Entity[];
  /** Every write (POST/PATCH) that succeeded, as `METHOD path`. */
  writes: string[];
  /** Answer the next request with this status and Graph error (once). */
  failNext?: { status: number; code: string; message: string };
  close(): Promise<void>;
}

const APPLICATION_PROPERTIES = new Set(['displayName', 'signInAudience', 'web', 'api', 'identifierUris', 'requiredResourceAccess']);
const CREDENTIAL_PROPERTIES = new Set(['name', 'issuer', 'subject', 'audiences', 'description']);

class GraphFailure extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function startGraphStandIn(options: { tenantId?: string; managedIdentities?: { clientId: string; principalId: string }[] } = {}): Promise<GraphStandIn> {
  const tenantId = options.tenantId ?? randomUUID();
  const standIn: Omit<GraphStandIn, 'url' | 'close'> = {
    token: `operator-token-${randomUUID()}`,
    tenantId,
    applications: [],
    servicePrincipals: [
      {
        id: randomUUID(),
        appId: '00000003-0000-0000-c000-000000000000',
        displayName: 'Microsoft Graph',
        oauth2PermissionScopes: Object.entries(GRAPH_SCOPE_IDS).map(([value, id]) => ({ id, value, type: 'User', isEnabled: true })),
      },
      ...(options.managedIdentities ?? []).map((identity) => ({ id: identity.principalId, appId: identity.clientId, displayName: 'gatehouse-identity', servicePrincipalType: 'ManagedIdentity' })),
    ],
    federatedCredentials: new Map(),
    grants: [],
    writes: [],
  };

  const server = createServer((request, response) => {
    void handle(standIn as GraphStandIn, request, response).catch((error: unknown) => {
      const failure = error instanceof GraphFailure ? error : new GraphFailure(500, 'generalException', String(error));
      send(response, failure.status, { error: { code: failure.code, message: failure.message } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return Object.assign(standIn, {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

function send(response: ServerResponse, status: number, body?: unknown): void {
  response.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' }).end(body === undefined ? undefined : JSON.stringify(body));
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new GraphFailure(400, 'BadRequest', 'body must be a JSON object');
  return parsed as Record<string, unknown>;
}

/** `appId eq 'x'` → a predicate; Graph supports much more, setup needs only this. */
function filterOf(url: URL): (entity: Entity) => boolean {
  const filter = url.searchParams.get('$filter');
  if (!filter) return () => true;
  const match = /^(\w+) eq '((?:[^']|'')*)'$/.exec(filter);
  if (!match?.[1] || match[2] === undefined) throw new GraphFailure(400, 'BadRequest', `unsupported $filter: ${filter}`);
  const [, property, quoted] = match;
  const value = quoted.replace(/''/g, "'");
  return (entity) => entity[property] === value;
}

function rejectUnknown(body: Record<string, unknown>, allowed: Set<string>): void {
  for (const key of Object.keys(body)) {
    if (!allowed.has(key)) throw new GraphFailure(400, 'Request_BadRequest', `Property '${key}' does not exist on type 'microsoft.graph.application'.`);
  }
}

function checkApplication(app: Entity): void {
  for (const uri of (app.identifierUris as string[] | undefined) ?? []) {
    if (uri !== `api://${String(app.appId)}`) throw new GraphFailure(400, 'HostNameNotOnVerifiedDomain', `Values of identifierUris property must use a verified domain of the organization or its subdomain: '${uri}'`);
  }
  const api = (app.api ?? {}) as { oauth2PermissionScopes?: { id: string }[]; preAuthorizedApplications?: { delegatedPermissionIds: string[] }[] };
  const scopeIds = new Set((api.oauth2PermissionScopes ?? []).map((scope) => scope.id));
  for (const entry of api.preAuthorizedApplications ?? []) {
    for (const id of entry.delegatedPermissionIds) {
      if (!scopeIds.has(id)) throw new GraphFailure(400, 'InvalidPreAuthorizedAppPermission', `Invalid permission id ${id} in preAuthorizedApplications.`);
    }
  }
}

async function handle(standIn: GraphStandIn, request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (request.headers.authorization !== `Bearer ${standIn.token}`) throw new GraphFailure(401, 'InvalidAuthenticationToken', 'Access token is empty or invalid.');
  if (standIn.failNext) {
    const failure = standIn.failNext;
    delete standIn.failNext;
    throw new GraphFailure(failure.status, failure.code, failure.message);
  }
  const url = new URL(request.url ?? '/', 'http://graph.invalid');
  const method = request.method ?? 'GET';
  const segments = url.pathname.split('/').filter(Boolean);
  if (segments[0] !== 'v1.0') throw new GraphFailure(400, 'BadRequest', 'Invalid version');
  const [, collection, id, sub, subId] = segments;
  const wrote = (): void => {
    standIn.writes.push(`${method} ${url.pathname}`);
  };

  if (collection === 'organization' && method === 'GET') return send(response, 200, { value: [{ id: standIn.tenantId, displayName: 'Contoso' }] });

  if (collection === 'applications') {
    if (!id && method === 'GET') return send(response, 200, { value: standIn.applications.filter(filterOf(url)) });
    if (!id && method === 'POST') {
      const body = await readJson(request);
      rejectUnknown(body, APPLICATION_PROPERTIES);
      if (typeof body.displayName !== 'string') throw new GraphFailure(400, 'Request_BadRequest', 'displayName is required.');
      const app: Entity = { identifierUris: [], ...body, id: randomUUID(), appId: randomUUID() };
      checkApplication(app);
      standIn.applications.push(app);
      wrote();
      return send(response, 201, app);
    }
    const app = standIn.applications.find((candidate) => candidate.id === id);
    if (!app) throw new GraphFailure(404, 'Request_ResourceNotFound', `Resource '${id}' does not exist.`);
    if (!sub && method === 'PATCH') {
      const body = await readJson(request);
      rejectUnknown(body, APPLICATION_PROPERTIES);
      const updated = { ...app, ...body };
      checkApplication(updated);
      Object.assign(app, body);
      wrote();
      return send(response, 204);
    }
    if (sub === 'federatedIdentityCredentials') return handleCredentials(standIn, app.id, subId, method, request, response, wrote);
  }

  if (collection === 'servicePrincipals') {
    if (!id && method === 'GET') return send(response, 200, { value: standIn.servicePrincipals.filter(filterOf(url)) });
    if (!id && method === 'POST') {
      const body = await readJson(request);
      if (!standIn.applications.some((app) => app.appId === body.appId)) throw new GraphFailure(400, 'Request_BadRequest', 'The appId of the service principal does not reference a valid application object.');
      if (standIn.servicePrincipals.some((principal) => principal.appId === body.appId)) throw new GraphFailure(409, 'Request_MultipleObjectsWithSameKeyValue', 'The service principal already exists.');
      const principal: Entity = { id: randomUUID(), appId: body.appId };
      standIn.servicePrincipals.push(principal);
      wrote();
      return send(response, 201, principal);
    }
  }

  if (collection === 'oauth2PermissionGrants') {
    if (!id && method === 'GET') return send(response, 200, { value: standIn.grants.filter(filterOf(url)) });
    if (!id && method === 'POST') {
      const body = await readJson(request);
      const principals = new Set(standIn.servicePrincipals.map((principal) => principal.id));
      if (!principals.has(String(body.clientId)) || !principals.has(String(body.resourceId))) throw new GraphFailure(400, 'Request_BadRequest', 'clientId and resourceId must be service principal ids.');
      const grant: Entity = { ...body, id: randomUUID() };
      standIn.grants.push(grant);
      wrote();
      return send(response, 201, grant);
    }
    const grant = standIn.grants.find((candidate) => candidate.id === id);
    if (grant && method === 'PATCH') {
      Object.assign(grant, { scope: (await readJson(request)).scope });
      wrote();
      return send(response, 204);
    }
  }
  throw new GraphFailure(400, 'BadRequest', `Resource not found for the segment '${collection ?? ''}'.`);
}

async function handleCredentials(standIn: GraphStandIn, appId: string, id: string | undefined, method: string, request: IncomingMessage, response: ServerResponse, wrote: () => void): Promise<void> {
  const credentials = standIn.federatedCredentials.get(appId) ?? [];
  standIn.federatedCredentials.set(appId, credentials);
  if (!id && method === 'GET') return send(response, 200, { value: credentials });
  const body = method === 'GET' ? {} : await readJson(request);
  rejectUnknown(body, CREDENTIAL_PROPERTIES);
  if (!id && method === 'POST') {
    if (credentials.some((credential) => credential.name === body.name)) throw new GraphFailure(409, 'Request_MultipleObjectsWithSameKeyValue', 'FederatedIdentityCredential with name already exists.');
    if (!Array.isArray(body.audiences) || body.audiences.length !== 1) throw new GraphFailure(400, 'Request_BadRequest', 'audiences must have exactly one value.');
    const credential: Entity = { ...body, id: randomUUID() };
    credentials.push(credential);
    wrote();
    return send(response, 201, credential);
  }
  const credential = credentials.find((candidate) => candidate.id === id);
  if (credential && method === 'PATCH') {
    if ('name' in body && body.name !== credential.name) throw new GraphFailure(400, 'Request_BadRequest', 'The name of a federated identity credential cannot be changed.');
    Object.assign(credential, body);
    wrote();
    return send(response, 204);
  }
  throw new GraphFailure(404, 'Request_ResourceNotFound', `Resource '${id ?? ''}' does not exist.`);
}
