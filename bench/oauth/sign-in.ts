import { CLIENT_REDIRECT, consentForm, pkcePair } from '../../test/authorization/harness.ts';
import { CookieBrowser, signInAtLocalIdp } from '../../test/upstream/support/cookie-browser.ts';
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
  const { verifier, challenge } = pkcePair();
  const authorize = new URL('/authorize', origin);
  authorize.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: CLIENT_REDIRECT,
    response_type: 'code',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource,
    scope: 'mcp:tools',
  }).toString();
  const leavesGatehouse = (url: URL) => url.origin !== origin;
  let step = await browser.follow(authorize, leavesGatehouse);
  if (step.response?.status === 200) {
    const form = consentForm(await step.response.text());
    const approved = await browser.request(new URL(form.action, origin), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
      body: new URLSearchParams({ consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' }).toString(),
    });
    step = await browser.follow(new URL(approved.headers.get('location') ?? '', origin), leavesGatehouse);
  }
  let redirect = step.stoppedAt;
  if (redirect && !redirect.href.startsWith(CLIENT_REDIRECT)) {
    const callback = await signInAtLocalIdp(browser, redirect.href, BENCH_USER, origin);
    redirect = (await browser.follow(callback, leavesGatehouse)).stoppedAt;
  }
  const code = redirect?.searchParams.get('code');
  if (!code) throw new Error(`the authorization ended without a code (${redirect?.href ?? `HTTP ${step.response?.status}`})`);
  const response = await fetch(`${origin}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: clientId, resource }),
  });
  if (response.status !== 200) throw new Error(`code exchange failed: HTTP ${response.status} ${await response.text()}`);
  return ((await response.json()) as { refresh_token: string }).refresh_token;
}
