import { SignJWT, exportJWK, generateKeyPair, type JWTPayload } from 'jose';

/**
 * Entra's v2 endpoints, served by an injected fetch (no network): a discovery document with the issuer shape Entra
 * uses for the authority and tenant, the JWKS, and a token endpoint whose ID token claims the test chooses.
 */
export interface FakeEntra {
  fetch: typeof globalThis.fetch;
  /** Every token-endpoint request body. */
  tokenRequests: URLSearchParams[];
  /** Claims of the next ID token; `nonce` is filled in from the authorization request unless set. */
  idTokenClaims: (nonce: string) => JWTPayload;
  /** Set to answer the next token request with this error body. */
  nextError?: Record<string, unknown>;
  /** Set to answer the next token request with this response as it is (an HTML error page, a non-JSON 200). */
  nextResponse?: () => Response;
  /** Fields set over the usual token answer (ID token and all), until unset: an access token of the IdP's own shape. */
  answerWith?: Record<string, unknown>;
  /** Sign the next ID tokens with a key that is not in the published JWKS (a forged token). */
  forgeSignature?: boolean;
  /** Remember the nonce of an authorization URL, as Entra would put it in the ID token. */
  rememberNonce(authorizationUrl: string): void;
}

export async function createFakeEntra(options: { authority: string; tenant: string; discoveryIssuer: string; clientId: string }): Promise<FakeEntra> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const rogue = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'entra-key-1', alg: 'RS256', use: 'sig' };
  const base = `${options.authority}/${options.tenant}`;
  const nonces: string[] = [];
  const fake: FakeEntra = {
    tokenRequests: [],
    idTokenClaims: () => ({}),
    rememberNonce(authorizationUrl) {
      nonces.push(new URL(authorizationUrl).searchParams.get('nonce') ?? '');
    },
    fetch: async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.href === `${base}/v2.0/.well-known/openid-configuration`) {
        return Response.json({
          issuer: options.discoveryIssuer,
          authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
          token_endpoint: `${base}/oauth2/v2.0/token`,
          jwks_uri: `${options.authority}/common/discovery/v2.0/keys`,
          response_types_supported: ['code'],
          id_token_signing_alg_values_supported: ['RS256'],
        });
      }
      if (url.href === `${options.authority}/common/discovery/v2.0/keys`) return Response.json({ keys: [jwk] });
      if (url.href === `${base}/oauth2/v2.0/token` && init?.method === 'POST') {
        const body = new URLSearchParams(String(init.body));
        fake.tokenRequests.push(body);
        if (fake.nextResponse) {
          const respond = fake.nextResponse;
          delete fake.nextResponse;
          return respond();
        }
        if (fake.nextError) {
          const error = fake.nextError;
          delete fake.nextError;
          return Response.json(error, { status: 400 });
        }
        const now = Math.floor(Date.now() / 1000);
        const response: Record<string, unknown> = {
          token_type: 'Bearer',
          access_token: `at-${now}-${fake.tokenRequests.length}`,
          refresh_token: `rt-${fake.tokenRequests.length}`,
          expires_in: 3600,
          scope: 'openid profile',
        };
        if (body.get('grant_type') === 'authorization_code') {
          const claims = fake.idTokenClaims(nonces.at(-1) ?? '');
          response.id_token = await new SignJWT({ nonce: nonces.at(-1), ...claims })
            .setProtectedHeader({ alg: 'RS256', kid: 'entra-key-1', typ: 'JWT' })
            .setAudience(options.clientId)
            .setIssuedAt(now)
            .setExpirationTime(now + 3600)
            .sign(fake.forgeSignature ? rogue.privateKey : privateKey);
        }
        return Response.json({ ...response, ...fake.answerWith });
      }
      return new Response('not found', { status: 404 });
    },
  };
  return fake;
}
