import { CLIENT_REDIRECT } from '../../test/authorization/harness.ts';
import { authorizeWithoutBrowser } from '../../test/support/authorize-without-browser.ts';
import type { CookieBrowser } from '../../test/upstream/support/cookie-browser.ts';
import { BENCH_USER } from './identity-provider.ts';

/**
 * One real authorization against the running Gatehouse, without a browser: DCR, `/authorize` with PKCE and the
 * resource, the consent page (approved), the sign-in form of the upstream IdP, the callback, and the code exchanged
 * at `/token`. Returns the refresh token of the new grant. With the same `browser`, later grants skip the consent
 * page and the sign-in form (remembered), as a returning user's would.
 */
export async function registerClient(origin: string): Promise<string> {
  const response = await fetch(`${origin}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: registrationBody,
  });
  if (response.status !== 201) throw new Error(`registration failed: HTTP ${response.status} ${await response.text()}`);
  return ((await response.json()) as { client_id: string }).client_id;
}

export const registrationBody = JSON.stringify({
  client_name: 'Bench MCP Client',
  redirect_uris: [CLIENT_REDIRECT],
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
});

export async function obtainRefreshToken(origin: string, clientId: string, resource: string, browser: CookieBrowser): Promise<string> {
  return (await authorizeWithoutBrowser({ origin, clientId, resource, user: BENCH_USER, browser })).refresh_token;
}
