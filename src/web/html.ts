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

/**
 * Everything that shows as nothing or rearranges text: control characters and Unicode's default-ignorable code points
 * (zero-width characters, the U+E0000 tag characters that can spell out a whole hidden sentence, variation selectors,
 * the bidirectional formatting characters) — and a lone surrogate (a surrogate pair is one character, which the `u`
 * flag keeps whole). JSON allows `"\ud800"` in a name; UTF-8 cannot write it, so every page and terminal showed
 * U+FFFD, and `x\ud800`, `x\udc00` and `x\ufffd` read alike while naming different tools.
 */
export const INVISIBLE_CHARACTERS = /[\p{Cc}\p{Default_Ignorable_Code_Point}\u061C\ud800-\udfff]/gu;

/** A character that would not show itself, written as its code point: `\x1b`, `\u200b`, `\u{e0041}`. */
export function codePointEscape(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`;
  return code <= 0xffff ? `\\u${code.toString(16).padStart(4, '0')}` : `\\u{${code.toString(16)}}`;
}

/**
 * Text published by someone else that an operator must see exactly — a tool definition before approving it, a tool's
 * or client's name in the console — as page markup: escaped, with every invisible character shown as its code point
 * and marked, instead of vanishing (a hidden instruction in tag characters read as nothing) or reordering the line (a
 * right-to-left override made "…to evil@attacker" read as something else).
 */
export function exactHtml(value: string): string {
  let markup = '';
  let last = 0;
  for (const match of value.matchAll(INVISIBLE_CHARACTERS)) {
    markup += `${escapeHtml(value.slice(last, match.index))}<mark class="hidden-char" title="an invisible character">${codePointEscape(match[0])}</mark>`;
    last = match.index + match[0].length;
  }
  return markup + escapeHtml(value.slice(last));
}

/** The same as plain text (an attribute, a label read aloud): each invisible character as its code point. */
export function visibleText(value: string): string {
  return value.replace(INVISIBLE_CHARACTERS, codePointEscape);
}

/**
 * A name chosen by someone else, or undefined when it would show as nothing: one of only blanks and invisible
 * characters (`"\u200b\u2060"`) left the consent page's heading reading " wants to access your account", as if the
 * gateway itself asked. Callers show their fallback (the client's host or id, "An application") instead.
 */
export function visibleName(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return SHOWS_SOMETHING.test(value.replace(INVISIBLE_CHARACTERS, '').replaceAll(BLANK_SYMBOL, '')) ? value : undefined;
}

/**
 * A name shows something when a letter, digit, punctuation mark or symbol is left: not only blanks (spaces of any
 * width) or a combining mark with nothing to sit on. The blank Braille pattern (U+2800) is a symbol that shows as
 * nothing, the usual filler of names meant to look empty.
 */
const SHOWS_SOMETHING = /[\p{L}\p{N}\p{P}\p{S}]/u;
const BLANK_SYMBOL = '\u2800';

/**
 * A URI someone else chose (a redirect URI), as text to show: in its parsed form, where what would not show itself
 * (a right-to-left override in the query, which made `…/cb?x=\u202emoc.elgoog//:sptth` read as a google.com URL) is
 * percent-encoded; one that does not parse is shown with each invisible character as its code point.
 */
export function visibleUri(value: string): string {
  return URL.parse(value)?.href ?? visibleText(value);
}

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
export function shortened(value: string): string {
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
