import { CLIENT_REDIRECT, consentForm, pkcePair } from '../authorization/harness.ts';
import { CookieBrowser, signInAtLocalIdp } from '../upstream/support/cookie-browser.ts';

export interface IssuedTokens {
  access_token: string;
  refresh_token: string;
}

/**
 * One real authorization against a running Gatehouse whose upstream is the local IdP, without a browser: `/authorize`
 * with PKCE and the resource, the consent page (approved), the IdP's sign-in form, the callback, and the code
 * exchanged at `/token` by the public client `clientId` (registered with CLIENT_REDIRECT). With the same `browser`,
 * later authorizations skip the consent page and the sign-in form (remembered), as a returning user's would.
 */
export async function authorizeWithoutBrowser(options: {
  origin: string;
  clientId: string;
  resource: string;
  user: { username: string; password: string };
  scope?: string;
  browser?: CookieBrowser;
}): Promise<IssuedTokens> {
  const { origin, clientId, resource, user } = options;
  const browser = options.browser ?? new CookieBrowser();
  const { verifier, challenge } = pkcePair();
  const authorize = new URL('/authorize', origin);
  authorize.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: CLIENT_REDIRECT,
    response_type: 'code',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource,
    scope: options.scope ?? 'mcp:tools',
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
    const callback = await signInAtLocalIdp(browser, redirect.href, user, origin);
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
  return (await response.json()) as IssuedTokens;
}
