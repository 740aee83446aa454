import type { RuleResult } from './config-rules.ts';
import type { GatehouseConfig } from './schema.ts';

/** Entra authorities that accept users of more than one tenant. */
export const MULTI_TENANT_AUTHORITIES: ReadonlySet<string> = new Set(['organizations', 'common', 'consumers']);
export const TENANT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** In `allowedTenants`: every tenant, said in so many words. */
export const ANY_TENANT = '*';

export function isMultiTenantAuthority(tenantId: string): boolean {
  return MULTI_TENANT_AUTHORITIES.has(tenantId.toLowerCase());
}

/**
 * Which Entra tenants' users may sign in, said explicitly. A multi-tenant authority with no list admitted every
 * tenant's users — anyone with a work account anywhere (and with `common`, any personal account) — the reverse of
 * what an empty list reads as; such a list is now required there, `['*']` for every tenant. Entries are tenant ids
 * (GUIDs): tokens carry `tid` as one, so a domain name listed could never match and only looked like a restriction.
 */
export function entraTenantProblems(config: GatehouseConfig, { problems, warnings }: RuleResult): void {
  const entra = config.upstream?.type === 'entra' ? config.upstream.entra : undefined;
  if (entra === undefined) return;
  const listed = entra.allowedTenants;
  if (!isMultiTenantAuthority(entra.tenantId)) {
    if (listed.length > 0) warnings.push(`upstream.entra.allowedTenants: ignored with a single tenant (tenantId ${entra.tenantId}); it applies to organizations/common`);
    return;
  }
  if (listed.length === 0) {
    problems.push(
      `upstream.entra.allowedTenants: required with tenantId: ${entra.tenantId} — the tenant ids whose users may sign in, or ['${ANY_TENANT}'] for users of every Entra tenant`,
    );
    return;
  }
  for (const [index, entry] of listed.entries()) {
    if (entry === ANY_TENANT ? listed.length > 1 : !TENANT_ID.test(entry)) {
      problems.push(`upstream.entra.allowedTenants[${index}]: "${entry}" — a tenant id (GUID), or '${ANY_TENANT}' alone`);
    }
  }
}
