import { BRANDING_STYLESHEET_PATH, type PageBranding } from './branding.ts';

/**
 * HTML building for our server-rendered pages. Every interpolated value goes through `escapeHtml`: client names,
 * logo URIs and redirect URIs are chosen by whoever registered the client, i.e. by a potential attacker.
 */
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);
}

/**
 * Characters that change how the text around them is laid out or read without showing themselves: Unicode's
 * bidirectional formatting characters (UAX #9: embeddings, overrides, isolates, the LRM/RLM/ALM marks) and control
 * characters. In a client's self-chosen name, a right-to-left override (U+202E) would reverse the words after the
 * name on the consent page ("… wants to access your account") into whatever the registrant wrote backwards.
 */
export const HIDDEN_FORMATTING = /[\p{Cc}\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu;

/** Text chosen by someone else (a client's name), without the characters that could rearrange the page around it. */
export function displayText(value: string): string {
  return value.replace(HIDDEN_FORMATTING, '');
}

/**
 * A name chosen by someone else, as page markup: escaped, stripped of hidden formatting, and in a `<bdi>` so that a
 * legitimately right-to-left name (Arabic, Hebrew) is laid out on its own and does not reorder the sentence it sits in.
 */
export function nameHtml(value: string): string {
  return `<bdi>${escapeHtml(displayName(value))}</bdi>`;
}

/** A name chosen by someone else as plain text to show (an attribute, a label): without hidden formatting, shortened. */
export function displayName(value: string): string {
  return shortened(displayText(value));
}

/**
 * The longest name shown whole, in characters. Client names come from anyone who registers or serves a metadata
 * document (RFC 7591 sets no limit): one of thousands of characters filled the consent page and every console row.
 */
export const NAME_DISPLAY_LIMIT = 100;

/** `value` cut to NAME_DISPLAY_LIMIT characters (code points, never half a surrogate pair), with an ellipsis. */
function shortened(value: string): string {
  if (value.length <= NAME_DISPLAY_LIMIT) return value;
  const characters = Array.from(value);
  return characters.length <= NAME_DISPLAY_LIMIT ? value : `${characters.slice(0, NAME_DISPLAY_LIMIT - 1).join('')}…`;
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
