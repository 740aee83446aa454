/**
 * The operator's branding (`branding` in the config) as the page shell (html.ts) uses it: organisation name and
 * logo at the top, a support link at the bottom, the accent colour on buttons and links. The config schema
 * validates the values and the shell escapes them; the colour reaches the page through a stylesheet generated from
 * our own origin (src/server/branding-assets.ts, `style-src 'self'`), never an inline style, so the pages' CSP needs
 * no `'unsafe-inline'`, hash or nonce.
 */
export interface PageBranding {
  organisationName?: string | undefined;
  /** An https URL or a path on this gateway (the schema refuses anything else). */
  logoUrl?: string | undefined;
  supportUrl?: string | undefined;
  /** `#rgb` or `#rrggbb`, readable on white (the schema checks its contrast). */
  accentColour?: string | undefined;
}

export const BRANDING_STYLESHEET_PATH = '/assets/branding.css';
