import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../runtime/clock.ts';
import { entraError, sendEntraError } from './entra-errors.ts';
import type { createFederatedCredentialBridge } from './federated-credential.ts';
import { withReadBody } from '../../server/replayed-request.ts';

/**
 * DEVELOPMENT ONLY — what the local IdP does to a `POST /token` before oidc-provider sees it, for the two Entra
 * behaviours oidc-provider has no hook for: a federated client assertion (bridged to `private_key_jwt`), and a
 * refresh token issued before the user's sessions were revoked (answered like Entra, AADSTS50173).
 */
interface RefreshTokenModel {
  accountId?: string;
  iat?: number;
  destroy(): Promise<void>;
}

export interface TokenRequestGateDeps {
  federated: ReturnType<typeof createFederatedCredentialBridge> | undefined;
  findRefreshToken: (value: string) => Promise<RefreshTokenModel | undefined>;
  /** Epoch ms per user id: refresh tokens issued at or before it are revoked. */
  revokedBefore: ReadonlyMap<string, number>;
  clock: Clock;
}

async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > limit) throw new Error('body too large');
  }
  return text;
}

/** Returns the request to hand on to oidc-provider, or undefined when it was already answered. */
export async function gateTokenRequest(deps: TokenRequestGateDeps, req: IncomingMessage, res: ServerResponse): Promise<IncomingMessage | undefined> {
  const { federated, clock } = deps;
  const params = new URLSearchParams(await readBody(req));
  if (params.get('grant_type') === 'refresh_token') {
    const token = await deps.findRefreshToken(params.get('refresh_token') ?? '');
    const cutoff = token?.accountId ? deps.revokedBefore.get(token.accountId) : undefined;
    // `iat` has one-second resolution: a token from the same second as the revocation counts as revoked.
    if (token && cutoff !== undefined && (token.iat ?? 0) * 1000 <= cutoff) {
      await token.destroy();
      sendEntraError(res, 400, entraError('invalid_grant', 50173, { suberror: 'bad_token', now: clock.now() }));
      return undefined;
    }
  }
  if (federated?.appliesTo(params)) {
    const outcome = await federated.bridge(params);
    if (!outcome.ok) {
      sendEntraError(res, outcome.status, outcome.body);
      return undefined;
    }
  }
  // The body as the provider would have read it, replayed (given as `req.body` it reads it too, but prints a warning
  // on the demo's terminal that looks like a misconfiguration).
  return withReadBody(req, Buffer.from(params.toString(), 'utf8'));
}
