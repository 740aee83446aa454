import type { PageBranding } from '../web/branding.ts';
import { displayText, escapeHtml, nameHtml, renderPage, visibleName, visibleUri } from '../web/html.ts';
import { imitatedProduct } from './product-names.ts';
import { isLoopbackRedirectHost, isPrivateUseRedirectUri } from './redirect-uri-policy.ts';

/**
 * The consent page: the confused-deputy defence. Gatehouse is one upstream client shared by every MCP client, so
 * without this page any client could get a token for a user merely because that user once signed in upstream.
 * The page names the client, shows where the user will be sent back (the redirect host, prominently: that is who
 * receives the code) and what it may do, and warns when nothing vouches for the client.
 *
 * @see MCP specification 2025-11-25+, Security Best Practices — "Confused Deputy Problem"
 */
export interface ConsentView {
  formAction: string;
  clientId: string;
  clientName: string | undefined;
  logoUri: string | undefined;
  /** Client id is a URL (CIMD). */
  isClientIdUrl: boolean;
  trust: 'verified' | 'configured' | 'unverified';
  redirectUri: string;
  resource: string;
  scopes: Array<{ name: string; description: string }>;
  consentState: string;
  csrfToken: string;
  /**
   * Who is signed in, when this browser already has a session at the authorization server (an earlier sign-in);
   * otherwise the upstream sign-in comes after this page and nobody is known yet.
   */
  signedInAs?: { name?: string | undefined; email?: string | undefined; subject: string } | undefined;
  branding?: PageBranding | undefined;
}

function safeLogo(logoUri: string | undefined): string | undefined {
  // Only https images: a `javascript:` or `data:` URI in an <img> is inert today, but there is no reason to allow it.
  const url = logoUri === undefined ? null : URL.parse(logoUri);
  return url?.protocol === 'https:' ? url.href : undefined;
}

/** The reassurance for a client someone vouches for; warnings about the rest are gathered in warningBox. */
function trustNotice(view: ConsentView): string {
  switch (view.trust) {
    case 'verified':
      return `<p class="notice verified" role="status"><span class="badge">Verified</span> This application's domain is approved by your organisation.</p>`;
    case 'configured':
      return `<p class="notice verified" role="status"><span class="badge">Configured</span> This application was registered by your administrator.</p>`;
    case 'unverified':
      return '';
  }
}

/**
 * Every reason to be careful, in one box: stacked boxes read as noise and the last one is skipped. Each item says
 * what it means for the user.
 */
function warnings(view: ConsentView, name: string): string[] {
  const items: string[] = [];
  if (view.trust === 'unverified') {
    items.push('<strong>Unverified application.</strong> Gatehouse cannot confirm who runs it. Only continue if you started this sign-in yourself and trust the application and the address below.');
    const product = imitatedProduct(view.clientName);
    if (product !== undefined) {
      items.push(`Its name, “${nameHtml(name)}”, looks like <strong>${escapeHtml(product)}</strong>, but anyone can register an application under any name: nothing confirms this is ${escapeHtml(product)}.`);
    }
  }
  const url = URL.parse(view.redirectUri);
  // A loopback redirect URI proves nothing about who receives the code: any program on the user's machine can
  // listen there and present the same client id (MCP 2026-07-28 Security Considerations, "Localhost Redirect URI Risks").
  if (view.trust !== 'configured' && url?.protocol === 'http:' && isLoopbackRedirectHost(url.hostname)) {
    items.push('The response goes to a program on <strong>this computer</strong>. Make sure the application you started is the one asking; another local program could use the same name.');
  }
  // A private-use scheme (RFC 8252 §7.1) names no web host: any app on the device may claim `cursor:` (§8.6).
  if (view.trust !== 'configured' && isPrivateUseRedirectUri(view.redirectUri)) {
    items.push(`The response goes to an <strong>app on this device</strong> that opens <code>${escapeHtml(redirectTarget(view.redirectUri))}</code> links. Any installed app can register that link type; only continue if you started this sign-in from the application named above.`);
  }
  return items;
}

function warningBox(items: string[]): string {
  if (items.length === 0) return '';
  if (items.length === 1) return `<div class="notice warning" role="alert"><p>${items[0]}</p></div>`;
  return `<div class="notice warning" role="alert"><p><strong>Check before you approve</strong></p><ul>${items.map((item) => `<li>${item}</li>`).join('')}</ul></div>`;
}

/** Whose account the approval is for, when known; otherwise what happens next. */
function signedInLine(view: ConsentView): string {
  const who = view.signedInAs;
  if (who === undefined) return '<p class="hint signed-in">After you approve, you sign in with your organisation account.</p>';
  const label = who.name ?? who.email ?? who.subject;
  const email = who.name !== undefined && who.email !== undefined ? ` (${nameHtml(who.email)})` : '';
  return `<p class="hint signed-in">Signed in as <strong>${nameHtml(label)}</strong>${email}</p>`;
}

/**
 * What the redirect target is called on the page: the host of a web or loopback URI; the scheme and authority of a
 * private-use URI (`cursor://anysphere.cursor-retrieval`, `com.example.app:`), which a bare host would disguise as a
 * website.
 */
export function redirectTarget(redirectUri: string): string {
  const url = URL.parse(redirectUri);
  if (url === null) return redirectUri;
  if (!isPrivateUseRedirectUri(redirectUri)) return url.host;
  return url.host === '' ? url.protocol : `${url.protocol}//${url.host}`;
}

export function renderConsentPage(view: ConsentView): string {
  const shown = visibleName(view.clientName);
  const name = shown === undefined ? (view.isClientIdUrl ? new URL(view.clientId).host : 'An application') : displayText(shown).trim();
  const logo = safeLogo(view.logoUri);
  const redirectHost = redirectTarget(view.redirectUri);
  const warningItems = warnings(view, name);
  // The mark sits in the heading itself, beside the name a look-alike would borrow.
  const mark = view.trust === 'unverified' && imitatedProduct(view.clientName) !== undefined ? ' <span class="badge unverified">unverified</span>' : '';
  const scopes = view.scopes
    .map((scope) => `<li>${escapeHtml(scope.description)}<br><code class="scope">${escapeHtml(scope.name)}</code></li>`)
    .join('\n');

  const body = `<div class="client">
${logo ? `<img src="${escapeHtml(logo)}" alt="" referrerpolicy="no-referrer">` : ''}
<div>
<h1><span class="client-name">${nameHtml(name)}</span>${mark} wants to access your account</h1>
<p class="client-id">${view.isClientIdUrl ? 'Client metadata' : 'Client ID'}: ${escapeHtml(view.clientId)}</p>
</div>
</div>
${signedInLine(view)}
${trustNotice(view)}${warningBox(warningItems)}
<div class="redirect">
<span>After you approve, you will be sent back to</span>
<strong class="redirect-host">${escapeHtml(redirectHost)}</strong>
<span>${escapeHtml(visibleUri(view.redirectUri))}</span>
</div>
<h2 class="hint">It will be able to:</h2>
<ul class="scopes">
${scopes}
</ul>
<p class="hint">on <code>${escapeHtml(view.resource)}</code></p>
<form method="post" action="${escapeHtml(view.formAction)}">
<input type="hidden" name="consent_state" value="${escapeHtml(view.consentState)}">
<input type="hidden" name="csrf_token" value="${escapeHtml(view.csrfToken)}">
<div class="actions">
<button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" name="decision" value="approve" class="primary">Approve</button>
</div>
</form>`;
  return renderPage(`Allow ${name}?`, body, { branding: view.branding });
}
