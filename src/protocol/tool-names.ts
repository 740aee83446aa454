/**
 * The identity of a tool name for pinning: NFKC then case folded, so `Send_Mail`, `send_mail` and a fullwidth
 * `ｓｅｎｄ_ｍａｉｌ` are one tool. A backend (or a client) cannot slip a look-alike past a pinned name: the look-alike
 * lands on the pinned record and, not being its exact name, is refused.
 */
export function foldToolName(name: string): string {
  // Invisible characters first (zero-width, soft hyphen, joiners, controls: `secret\u00ad_tool`, `secret_tool\u200b`
  // would otherwise be other names), as NFKC_Casefold drops them; then lower, upper, lower: the upper step expands
  // what full case folding expands (ß, ẞ → SS).
  return name.replace(INVISIBLE, '').normalize('NFKC').toLowerCase().toUpperCase().toLowerCase().normalize('NFKC');
}

/** Default-ignorable code points (Unicode's own list of what renders as nothing) and control characters. */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cc}]/gu;

/** A tool name as the policy judges a called one: folded, and without outer white space. */
export const foldPolicyName = (name: string): string => foldToolName(name).trim();
