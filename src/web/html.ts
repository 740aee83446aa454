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

/** The page shell; `body` must already be escaped markup. `wide`: room for code (the landing page). */
export function renderPage(title: string, body: string, options: { wide?: boolean } = {}): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Gatehouse</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
</head>
<body>
<main class="card${options.wide ? ' wide' : ''}">
<p class="brand" aria-hidden="true">Gatehouse</p>
${body}
</main>
</body>
</html>
`;
}
