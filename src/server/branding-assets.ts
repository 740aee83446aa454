import { AA_CONTRAST, contrastRatio } from '../config/colour-contrast.ts';
import type { PageBranding } from '../web/branding.ts';
import { cspOrigin } from '../config/csp-source.ts';

/**
 * What the configured branding needs from the server: the generated accent stylesheet (served at
 * BRANDING_STYLESHEET_PATH) and the logo's origin for the pages' `img-src`.
 */

/** The dark scheme's card colour (src/web/gatehouse.css): an accent readable on it is kept in dark mode too. */
const DARK_CARD = '#1b2029';

/** Text on an accent-filled button: white, or near-black where white would not be readable. */
const textOn = (accent: string): string => (contrastRatio(accent, '#ffffff') >= AA_CONTRAST ? '#ffffff' : '#0c1020');

/** The accent as the pages' custom properties; empty when no accent is configured. */
export function brandingStylesheet(branding: PageBranding): string {
  const accent = branding.accentColour;
  if (accent === undefined) return '';
  const rule = `:root { --accent: ${accent}; --accent-text: ${textOn(accent)}; }`;
  // In the dark scheme the default accent stays unless the brand colour is readable on the dark card as well.
  return contrastRatio(accent, DARK_CARD) >= AA_CONTRAST ? `${rule}\n@media (prefers-color-scheme: dark) { ${rule} }\n` : `@media (prefers-color-scheme: light) { ${rule} }\n`;
}

/** Origins the pages load the logo from (`img-src`); a path on this gateway is `'self'` already. */
export function brandingImageOrigins(branding: PageBranding): string[] {
  const origin = branding.logoUrl === undefined || branding.logoUrl.startsWith('/') ? undefined : cspOrigin(branding.logoUrl);
  return origin === undefined ? [] : [origin];
}
