import type Provider from 'oidc-provider';
import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Logger } from 'pino';
import { ProtocolError } from '../errors/protocol-error.ts';
import { renderErrorBody } from '../errors/render-error.ts';
import { StoreUnavailableError, storeFailureLogFields } from '../store/store.ts';

/**
 * oidc-provider cannot look up a structured (JWT) token: its revocation and introspection endpoints refuse one with
 * `unsupported_token_type` — after parsing the request and authenticating the client exactly as for any other token.
 * Gatehouse's access tokens are JWTs, so those endpoints finish the job here (access-token-revocation.ts,
 * access-token-introspection.ts): `answer` runs for exactly those requests, with the authenticated client and the
 * token, and what it returns replaces the provider's refusal. A failure of its own (the store) is a 503 the client may
 * retry, with `failure` as its words.
 */
export interface StructuredTokenAnswer {
  status: number;
  /** JSON, or '' for none. */
  body: string;
}

export function takeOverStructuredTokens(
  provider: Provider,
  endpoint: 'revocation' | 'introspection',
  answer: (ctx: KoaContextWithOIDC, client: Client, token: string) => Promise<StructuredTokenAnswer>,
  failure: { logger: Logger; description: string },
): void {
  // The requests whose token the provider refused as structured: its error event fires while the request is still in
  // the route, before our middleware resumes.
  const structured = new WeakSet<object>();
  provider.on(`${endpoint}.error`, (ctx: unknown, error: unknown) => {
    if (typeof ctx === 'object' && ctx !== null && error instanceof errors.UnsupportedTokenType) structured.add(ctx);
  });

  provider.use(async (ctx, next) => {
    await next();
    if (!structured.has(ctx)) return;
    const client = ctx.oidc.client;
    const token = ctx.oidc.params?.token;
    // The client was authenticated before the token was looked at (no client: the refusal stands).
    if (client === undefined || typeof token !== 'string') return;
    let result: StructuredTokenAnswer;
    try {
      result = await answer(ctx, client, token);
    } catch (error) {
      // An outage is one warning line naming it, as on every other path (no stack trace per request); anything
      // else is a fault of ours, logged whole.
      if (error instanceof StoreUnavailableError) failure.logger.warn(storeFailureLogFields(error), `access token ${endpoint} failed: store unavailable`);
      else failure.logger.error({ err: error }, `access token ${endpoint} failed`);
      const unavailable = new ProtocolError('temporarily_unavailable', failure.description);
      result = { status: unavailable.status, body: renderErrorBody(unavailable).body };
      ctx.set('retry-after', '5');
    }
    // The provider already rendered its error (JSON or an HTML page); replace it entirely.
    ctx.remove('content-type');
    ctx.body = result.body;
    ctx.status = result.status;
    if (result.body !== '') ctx.type = 'application/json; charset=utf-8';
    // Token metadata and refusals are not cached (RFC 6749 §5.1, RFC 7662 §2.2).
    ctx.set('cache-control', 'no-store');
  });
}
