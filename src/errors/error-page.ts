import type { PageBranding } from '../web/branding.ts';
import { escapeHtml, renderPage } from '../web/html.ts';
import type { ErrorCode, NextStep } from './protocol-error.ts';

/**
 * The one HTML error page, for every browser-facing error (an expired consent, a stale form, the back button after
 * sign-in, a refused admin page, a store outage): what happened in plain words, what to do next, and the request id
 * an operator needs to find the log line. Styled like the consent page; everything interpolated is escaped.
 */
const pageText: Record<ErrorCode, { title: string; next: string }> = {
  invalid_request: { title: 'This request could not be used', next: 'Go back to the application and start again.' },
  invalid_client: { title: 'The application is not recognised', next: 'If the application registered itself, remove this server from it and add it again (it registers anew); otherwise ask its publisher to register it again.' },
  invalid_grant: { title: 'This sign-in can no longer be completed', next: 'Go back to the application and sign in again.' },
  unauthorized_client: { title: 'The application may not sign in this way', next: 'Contact the application’s publisher.' },
  unsupported_grant_type: { title: 'The application asked for something unsupported', next: 'Contact the application’s publisher.' },
  invalid_scope: { title: 'The application asked for permissions that do not exist', next: 'Contact the application’s publisher.' },
  invalid_target: { title: 'The application asked for a service this gateway does not protect', next: 'Check the server URL configured in the application.' },
  access_denied: { title: 'Access was not allowed', next: 'If you think you should have access, ask your administrator.' },
  invalid_redirect_uri: { title: 'The application’s return address is not allowed', next: 'Contact the application’s publisher.' },
  invalid_client_metadata: { title: 'The application’s registration is invalid', next: 'Contact the application’s publisher.' },
  invalid_token: { title: 'You are not signed in', next: 'Sign in again and retry.' },
  invalid_dpop_proof: { title: 'The request’s proof of key possession was refused', next: 'Retry from the application; if it persists, sign in again.' },
  use_dpop_nonce: { title: 'The request needs a fresh proof', next: 'Retry from the application.' },
  insufficient_scope: { title: 'More permissions are needed', next: 'Go back to the application and approve the requested permissions.' },
  interaction_required: { title: 'Your identity provider needs you to sign in again', next: 'Go back to the application and sign in again.' },
  // A page reloaded after an outage can find its one-use step already spent (a sign-in's state): then only a new start helps.
  temporarily_unavailable: { title: 'The service is temporarily unavailable', next: 'Wait a moment, then try again; if the page then says the sign-in expired, start again from the application.' },
  rate_limited: { title: 'Too many requests', next: 'Wait a moment, then try again.' },
  forbidden_origin: { title: 'This page may not be used from that site', next: 'Open Gatehouse directly rather than through another site.' },
  not_found: { title: 'Page not found', next: 'Check the address, or go back and start again.' },
  payload_too_large: { title: 'What was sent is too large', next: 'Go back and try again with less.' },
  bad_gateway: { title: 'The service behind this gateway failed', next: 'Try again later; if it persists, tell your administrator.' },
  gateway_timeout: { title: 'The service behind this gateway did not answer in time', next: 'Try again later; if it persists, tell your administrator.' },
  server_error: { title: 'Something went wrong on our side', next: 'Try again; if it persists, give your administrator the request id below.' },
};

export function renderErrorPage(input: { code: ErrorCode; description: string; requestId?: string | undefined; branding?: PageBranding | undefined; nextStep?: NextStep | undefined }): string {
  const { title, next } = pageText[input.code];
  const requestId = input.requestId === undefined ? '' : ` · request id <code class="error-code">${escapeHtml(input.requestId)}</code>`;
  const reference = `\n<p class="hint">Error <code class="error-code">${escapeHtml(input.code)}</code>${requestId}</p>`;
  const step = input.nextStep;
  // A path on this gateway only: `/` then printable ASCII without `\` (`//host`, `/\host`, a tab or a line break a
  // browser strips before reading `//host`: none passes). The link cannot lead off it.
  const link = step?.link !== undefined && /^\/(?!\/)[!-[\]-~]*$/.test(step.link.path) ? ` <a href="${escapeHtml(step.link.path)}">${escapeHtml(step.link.label)}</a>` : '';
  return renderPage(title, `<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(input.description)}</p>
<p><strong>What to do next:</strong> ${escapeHtml(step?.text ?? next)}${link}</p>${reference}`, { branding: input.branding });
}
