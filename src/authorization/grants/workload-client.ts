import { decodeJwt } from 'jose';
import type Provider from 'oidc-provider';
import type { IncomingMessage } from 'node:http';
import type { WorkloadIdentityConfig } from '../../config/schema.ts';
import { JWT_BEARER_GRANT } from '../../protocol/oauth-urns.ts';
import { mediaTypeOf } from '../../protocol/media-type.ts';
import { isIdJag } from './id-jag.ts';
import { noteIssuance } from './issuance-audit.ts';
import { withReadBody } from '../../server/replayed-request.ts';
import { workloadIssuerOf } from './workload-identity.ts';
import { matchWorkloadRule } from './workload-rules.ts';

/**
 * A workload presents only its platform token: no `client_id`, no client authentication (MCP workload identity
 * federation: "eliminates the need for client identifiers"). oidc-provider authenticates a client before any grant
 * runs, so this names the client the operator's rules map the token to, as if the request had sent
 * `client_id=<that client>` — a public client whose only credential is the token. Nothing is trusted here: the claims
 * are read unverified only to pick the client, and the grant (workload-identity.ts) verifies the token and applies
 * the rules again, requiring that same client. A request that names a client or authenticates is left alone.
 */
export function installWorkloadClientNaming(provider: Provider, issuers: readonly WorkloadIdentityConfig[]): void {
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path === '/token' && ctx.get('authorization') === '' && mediaTypeOf(ctx.req.headers['content-type']) === 'application/x-www-form-urlencoded') {
      const body = await readAll(ctx.req);
      const params = new URLSearchParams(body.toString());
      const named = clientFor(issuers, params);
      if (named === null) {
        noteIssuance(ctx, { kind: 'workload' });
        // RFC 7523 §3.1: an assertion that is not acceptable is `invalid_grant` — not the provider's `invalid_client`
        // for a request that names no client, which would send the workload looking for credentials it does not need.
        ctx.status = 400;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { error: 'invalid_grant', error_description: 'The assertion is not from a trusted workload identity issuer, or no rule admits this workload.' };
        return;
      }
      if (named !== undefined) params.set('client_id', named);
      // The body was read here: hand the provider a request carrying it (rewritten only when a client was named).
      const replaced = withReadBody(ctx.req, named === undefined ? body : Buffer.from(params.toString()));
      ctx.req = replaced;
      (ctx.request as { req: IncomingMessage }).req = replaced;
    }
    await next();
  });
}

/**
 * The client a client-less jwt-bearer request acts as: undefined when the request is not one (it names or
 * authenticates a client, or carries an ID-JAG, which needs its client's authentication), null when no trusted issuer
 * and rule admit its assertion.
 */
function clientFor(issuers: readonly WorkloadIdentityConfig[], params: URLSearchParams): string | null | undefined {
  if (params.get('grant_type') !== JWT_BEARER_GRANT || params.has('client_id') || params.has('client_assertion')) return undefined;
  const assertion = params.get('assertion');
  if (assertion === null) return undefined;
  try {
    if (isIdJag(assertion)) return undefined;
    const trusted = workloadIssuerOf(issuers, assertion);
    return (trusted === undefined ? undefined : matchWorkloadRule(trusted.rules, decodeJwt(assertion))?.clientId) ?? null;
  } catch {
    return null;
  }
}

async function readAll(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}
