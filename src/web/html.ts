import { BRANDING_STYLESHEET_PATH, type PageBranding } from './branding.ts';

/**
 * HTML building for our server-rendered pages. Every interpolated value goes through `escapeHtml`: client names,
 * logo URIs and redirect URIs are chosen by whoever registered the client, i.e. by a potential attacker.
 */
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);
}

/** Path of the one stylesheet our pages use (served by interaction-routes.ts; CSP `style-src 'self'`). */
export const STYLESHEET_PATH = '/assets/gatehouse.css';

export interface PageOptions {
  /** Room for code (the landing page). */
  wide?: boolean;
  /** The operator's `branding` (src/web/branding.ts). */
  branding?: PageBranding | undefined;
}

/** The top line of a page: the organisation (with its logo) when configured, else the product name. */
function brandLine(branding: PageBranding | undefined): string {
  const name = branding?.organisationName;
  if (name === undefined) return '<p class="brand" aria-hidden="true">Gatehouse</p>';
  const logo = branding?.logoUrl === undefined ? '' : `<img class="logo" src="${escapeHtml(branding.logoUrl)}" alt="" referrerpolicy="no-referrer">`;
  return `<p class="brand org">${logo}<span>${escapeHtml(name)}</span></p>`;
}

function supportLine(branding: PageBranding | undefined): string {
  if (branding?.supportUrl === undefined) return '';
  const who = branding.organisationName === undefined ? 'your support team' : `${branding.organisationName} support`;
  return `\n<p class="hint support">Need help? <a href="${escapeHtml(branding.supportUrl)}" rel="noreferrer">Contact ${escapeHtml(who)}</a></p>`;
}

/** The page shell; `body` must already be escaped markup. */
export function renderPage(title: string, body: string, options: PageOptions = {}): string {
  const { branding } = options;
  const accent = branding?.accentColour === undefined ? '' : `\n<link rel="stylesheet" href="${BRANDING_STYLESHEET_PATH}">`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · ${escapeHtml(branding?.organisationName ?? 'Gatehouse')}</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">${accent}
</head>
<body>
<main class="card${options.wide ? ' wide' : ''}">
${brandLine(branding)}
${body}${supportLine(branding)}
</main>
</body>
</html>
`;
}
