import type { InteractionPolicy, KoaContextWithOIDC } from 'oidc-provider';
import { interactionPolicy } from 'oidc-provider';
import type { Store } from '../store/store.ts';
import { grantRedirectUrisRecord } from '../records/authorization.ts';
import { readRecord, writeRecord } from '../store/record-access.ts';
import { sameRedirectTarget } from './redirect-uri-policy.ts';

/**
 * The redirect URIs a user approved a grant for. oidc-provider's grant records scopes and resources, not where the
 * code goes, so on its own a grant approved for one redirect URI would silently cover another one of the same client
 * (another host, maybe another party's): the second authorization got a code with no page. The consent page shows
 * the redirect host, so the approval is bound to that redirect URI, and any other one asks again.
 * @see RFC 9700 §4.1 (redirect URI attacks), MCP security best practices (per-client, per-redirect consent)
 */
/** Bounded like the approvals cookie: a grant is for one client, which has a handful of redirect URIs. */
const MAX_REDIRECT_URIS = 20;

export async function approvedRedirectUris(store: Store, grantId: string): Promise<string[]> {
  // Invalid reads as "approved for nothing": the consent page asks again, and approving rewrites the record.
  const record = await readRecord(store, grantRedirectUrisRecord, grantId, { invalid: 'absent' });
  return record?.redirectUris ?? [];
}

/** Adds `redirectUri` to what the grant was approved for; lives as long as the grant may (`ttlSeconds`). */
export async function approveRedirectUri(store: Store, grantId: string, redirectUri: string, ttlSeconds: number): Promise<void> {
  const existing = (await approvedRedirectUris(store, grantId)).filter((uri) => !sameRedirectTarget(uri, redirectUri));
  const record = { redirectUris: [...existing, redirectUri].slice(-MAX_REDIRECT_URIS) };
  await writeRecord(store, grantRedirectUrisRecord, grantId, record, { ttlSeconds });
}

interface GrantContext {
  grant?: { jti?: string };
  params?: Record<string, unknown>;
}

/**
 * The provider's interaction policy with one more consent check: an existing grant whose approvals do not include
 * this request's redirect URI is asked about again (the check runs after the provider validated the redirect URI).
 */
export function policyWithRedirectConsent(store: Store): InteractionPolicy {
  const policy = interactionPolicy.base();
  const check = new interactionPolicy.Check(
    'redirect_uri_not_approved',
    'the redirect URI was not approved by the end-user',
    async (ctx: KoaContextWithOIDC) => {
      const { grant, params } = ctx.oidc as GrantContext;
      const redirectUri = params?.redirect_uri;
      // No grant yet: the provider's own checks already ask for consent.
      if (grant?.jti === undefined || typeof redirectUri !== 'string') return false;
      // A loopback redirect URI on another port is the same place (RFC 8252 §7.3).
      return !(await approvedRedirectUris(store, grant.jti)).some((uri) => sameRedirectTarget(uri, redirectUri));
    },
  );
  policy.get('consent')?.checks.add(check);
  return policy;
}
