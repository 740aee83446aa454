import type Provider from 'oidc-provider';
import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import { accountRecord } from '../../records/account.ts';
import type { Clock } from '../../runtime/clock.ts';
import { createRecord } from '../../store/record-access.ts';
import type { Store } from '../../store/store.ts';
import type { ProtectedResource } from '../protected-resources.ts';
import { resourceServerInfo } from '../resource-server-info.ts';
import { bindToProof, type DpopProof } from './dpop-binding.ts';

/**
 * The answer to an accepted JWT grant for a user (ID-JAG): a grant record like the one consent creates — so it shows
 * on /account and in the admin console, and `endGrant` revokes it — and an access token of that grant for the one
 * resource, with no refresh token (the client asks its IdP for a fresh ID-JAG, and the IdP's policy is applied again).
 * The grant lives as long as its access token.
 */
export interface AssertionGrant {
  subject: string;
  issuer: string;
  name?: string | undefined;
  email?: string | undefined;
  client: Client;
  resource: ProtectedResource;
  scopes: string[];
  /** oidc-provider's `gty` of the token (shows in its events). */
  grantType: string;
  /** The request's verified DPoP proof: the token is bound to its key. */
  dpop: DpopProof | undefined;
}

export interface IssueDeps {
  store: Store;
  clock: Clock;
  accessTokenTtlSeconds: number;
  signingAlg: string;
}

interface AccessTokenModel {
  scope?: string;
  resourceServer?: unknown;
  readonly expiration: number;
  /** `DPoP` once bound to a proof's key, else `Bearer`. */
  readonly tokenType: string;
  save(): Promise<string>;
}
type AccessTokenConstructor = new (properties: { accountId: string; client: Client; grantId: string; gty: string }) => AccessTokenModel;
type ResourceServerConstructor = new (identifier: string, info: unknown) => unknown;

export async function issueAssertionGrant(provider: Provider, ctx: KoaContextWithOIDC, deps: IssueDeps, issued: AssertionGrant): Promise<void> {
  await rememberAccount(deps, issued);
  // The grant's own lifetime, not `ttl.Grant`: that one is a refresh-token chain's (90 days by default), and this grant
  // has no refresh token, so each ID-JAG left a grant listed as live on /account and in the console long after its
  // only token had expired. (oidc-provider's `save` takes no lifetime; `expiresIn` is the model's.)
  const grant = new provider.Grant({ accountId: issued.subject, clientId: issued.client.clientId, expiresIn: deps.accessTokenTtlSeconds });
  grant.addResourceScope(issued.resource.resource, issued.scopes.join(' '));
  const grantId = await grant.save();

  // oidc-provider's models are untyped in oidc-provider.d.ts beyond what other parts call.
  const AccessToken = provider.AccessToken as AccessTokenConstructor;
  const token = new AccessToken({ accountId: issued.subject, client: issued.client, grantId, gty: issued.grantType });
  await answerWithToken(provider, ctx, deps, token, issued);
}

/**
 * An app-only token for a workload (no user, no grant): oidc-provider's client-credentials token, so it carries
 * exactly what a client-credentials token carries (`sub` = the client, `app_only`, see client-credentials.ts).
 */
export async function issueAppOnlyToken(
  provider: Provider,
  ctx: KoaContextWithOIDC,
  deps: IssueDeps,
  issued: Pick<AssertionGrant, 'client' | 'resource' | 'scopes' | 'dpop'>,
): Promise<void> {
  const ClientCredentials = provider.ClientCredentials as new (properties: { client: Client }) => AccessTokenModel;
  await answerWithToken(provider, ctx, deps, new ClientCredentials({ client: issued.client }), issued);
}

async function answerWithToken(
  provider: Provider,
  ctx: KoaContextWithOIDC,
  deps: IssueDeps,
  token: AccessTokenModel,
  issued: Pick<AssertionGrant, 'resource' | 'scopes' | 'dpop'>,
): Promise<void> {
  const ResourceServer = provider.ResourceServer as ResourceServerConstructor;
  token.scope = issued.scopes.join(' ');
  token.resourceServer = new ResourceServer(issued.resource.resource, resourceServerInfo(issued.resource, deps));
  bindToProof(issued.dpop, token);
  const value = await token.save();
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { access_token: value, token_type: token.tokenType, expires_in: token.expiration, scope: token.scope };
}

/**
 * The admin pages and the gateway read who a subject is from the `account` record. A user who never signed in
 * through Gatehouse gets one from the assertion; an existing record (with the groups of a real sign-in) is kept.
 */
async function rememberAccount(deps: IssueDeps, issued: AssertionGrant): Promise<void> {
  const now = deps.clock.now();
  await createRecord(deps.store, accountRecord, issued.subject, {
    subject: issued.subject,
    issuer: issued.issuer,
    ...(issued.name === undefined ? {} : { name: issued.name }),
    ...(issued.email === undefined ? {} : { email: issued.email }),
    groups: [],
    firstSeenAt: now,
    lastSeenAt: now,
  });
}
