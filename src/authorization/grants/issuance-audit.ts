import type Provider from 'oidc-provider';
import { JWT_BEARER_GRANT } from '../../protocol/oauth-urns.ts';
import type { AuditRecord } from '../../records/audit.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { ProtectedResources } from '../protected-resources.ts';
import { CLIENT_CREDENTIALS_GRANT } from './client-credentials.ts';

/**
 * Tokens issued on standing credentials — the client credentials grant, and the JWT bearer grant with an ID-JAG or a
 * workload's token — are audit records, as every MCP request and every token exchange is. No person approved these at
 * a consent page: the audit trail is the only place an operator sees which agent obtained a token for which MCP
 * server (and, for an ID-JAG, for whom), or why it was refused — also when the token endpoint refused it before the
 * grant ran (failed client authentication, recorded without a client; a client without the grant; a parameter given
 * twice). Method: `client_credentials`, `jwt-bearer id-jag` or `jwt-bearer workload` (`jwt-bearer` when refused before
 * the assertion was read); route: the MCP server's path, `/token` while it is not known. Never a token or assertion.
 */
export interface IssuanceAuditDeps {
  recordAudit: (entry: AuditRecord) => void;
  clock: Clock;
  resources: ProtectedResources;
}

/** What the grant handler learned that the request's parameters do not say (the assertion's subject and audience). */
export interface IssuedFor {
  kind: 'id-jag' | 'workload';
  user?: string;
  resource?: string;
}

const learned = new WeakMap<object, IssuedFor>();

/** Called by the JWT bearer grant once it knows what the assertion is (and, later, whom and what it is for). */
export function noteIssuance(ctx: object, issued: IssuedFor): void {
  learned.set(ctx, { ...learned.get(ctx), ...issued });
}

const AUDITED_GRANTS = new Set([CLIENT_CREDENTIALS_GRANT, JWT_BEARER_GRANT]);

/**
 * Installed before the JWT bearer grant's own middleware (workload-client.ts), which answers a workload token no rule
 * admits before the provider has read the request: that refusal is recorded too, from what the middleware noted.
 */
export function installIssuanceAudit(provider: Provider, deps: IssuanceAuditDeps): void {
  const { recordAudit, clock, resources } = deps;
  provider.use(async (ctx, next) => {
    const started = clock.now();
    await next();
    const issued = learned.get(ctx);
    const body = ctx.oidc?.body as Record<string, unknown> | undefined;
    const grantType = ctx.oidc?.route === 'token' ? auditedGrantType(body?.grant_type) : issued === undefined ? undefined : JWT_BEARER_GRANT;
    if (grantType === undefined) return;
    const code = ctx.status >= 400 ? (ctx.body as { error?: unknown } | undefined)?.error : undefined;
    // The provider found the client the request named even when its authentication failed: only a client that
    // proved who it is is recorded as one.
    const clientId = code === 'invalid_client' ? undefined : ctx.oidc?.client?.clientId;
    const resource = issued?.resource ?? (grantType === CLIENT_CREDENTIALS_GRANT ? single(body?.resource) : undefined);
    const route = resource === undefined ? undefined : resources.find(resource)?.route.path;
    recordAudit({
      time: started,
      ...(issued?.user === undefined ? {} : { user: issued.user }),
      ...(clientId === undefined ? {} : { client: clientId }),
      route: route ?? '/token',
      method: grantType === CLIENT_CREDENTIALS_GRANT ? grantType : issued === undefined ? 'jwt-bearer' : `jwt-bearer ${issued.kind}`,
      outcome: ctx.status < 400 ? 'allowed' : ctx.status >= 500 ? 'error' : 'denied',
      status: ctx.status,
      ...(ctx.status < 400 ? {} : { reason: typeof code === 'string' ? code : 'invalid_request' }),
      durationMs: clock.now() - started,
      bytesIn: 0,
      bytesOut: 0,
    });
  });
}

/** The grant type, when it is one audited here; a duplicated `grant_type` (refused by the provider) counts as its value. */
function auditedGrantType(value: unknown): string | undefined {
  const grantType = Array.isArray(value) ? value.find((entry) => AUDITED_GRANTS.has(entry as string)) : value;
  return typeof grantType === 'string' && AUDITED_GRANTS.has(grantType) ? grantType : undefined;
}

function single(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
