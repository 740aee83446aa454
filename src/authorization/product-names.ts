/**
 * Whether a client's self-chosen name looks like a well-known MCP client's. Anyone can register a client (RFC 7591)
 * and call it "Visual Studio Code"; the consent page then shows that name in large type. Nothing stops the name, so
 * an unverified client whose name imitates a product gets a visible "unverified" mark beside it.
 *
 * Names are compared by a skeleton, in the spirit of Unicode TS #39 confusable detection: NFKC (fullwidth and
 * compatibility forms), accents removed, case folded, common Cyrillic/Greek look-alikes and digit substitutions
 * mapped to Latin letters, then everything but letters dropped (spaces, dots, zero-width characters). "VS Code",
 * "vscode", "Ｃｌａｕｄｅ", "Сlaude" (Cyrillic С) and "C1aude" all match.
 */
const PRODUCTS: Record<string, string> = {
  visualstudiocode: 'Visual Studio Code',
  vscode: 'Visual Studio Code',
  vscodium: 'VSCodium',
  claude: 'Claude',
  anthropic: 'Anthropic',
  chatgpt: 'ChatGPT',
  openai: 'OpenAI',
  cursor: 'Cursor',
  copilot: 'GitHub Copilot',
  github: 'GitHub',
  windsurf: 'Windsurf',
  gemini: 'Gemini',
  mcpinspector: 'MCP Inspector',
};

const LOOK_ALIKES: Record<string, string> = {
  // Cyrillic
  а: 'a', в: 'b', с: 'c', ԁ: 'd', е: 'e', ё: 'e', һ: 'h', і: 'i', ї: 'i', ј: 'j', к: 'k', ӏ: 'l', м: 'm', н: 'h', о: 'o', р: 'p', ԛ: 'q', ѕ: 's', т: 't', у: 'y', х: 'x', ԝ: 'w',
  // Greek
  α: 'a', β: 'b', ε: 'e', η: 'n', ι: 'i', κ: 'k', ν: 'v', ο: 'o', ρ: 'p', τ: 't', υ: 'u', χ: 'x', γ: 'y',
  // Armenian and Latin extensions
  ս: 'u', օ: 'o', ց: 'g', ı: 'i', ɑ: 'a', ɡ: 'g', ɩ: 'i',
  // Digits and symbols used as letters
  '0': 'o', '1': 'l', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', $: 's', '|': 'l',
};

/** The comparison form of a name (exported for tests). */
export function nameSkeleton(name: string): string {
  const folded = name.normalize('NFKC').normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
  return [...folded].map((char) => LOOK_ALIKES[char] ?? char).join('').replace(/[^a-z]/g, '');
}

/**
 * The name as written, and read the other way where letters look alike only in their pairing or case (Unicode TS #39
 * confusables that case folding cannot see): capital `I` as `l` ("CIaude"), `rn` as `m`, `vv` as `w`. Both are
 * checked, so "MCP INSPECTOR" still reads as itself.
 */
function skeletons(name: string): string[] {
  const confusable = nameSkeleton(name.normalize('NFKC').replace(/I/g, 'l')).replace(/rn/g, 'm').replace(/vv/g, 'w');
  return [nameSkeleton(name), confusable];
}

/** The product a name imitates (or is), if any. */
export function imitatedProduct(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const forms = skeletons(name).filter((form) => form !== '');
  const key = Object.keys(PRODUCTS).find((product) => forms.some((form) => form.includes(product)));
  return key === undefined ? undefined : PRODUCTS[key];
}
