/**
 * RFC 8785 canonical JSON of a value JSON.parse produced: members sorted by their names' UTF-16 code units, no white
 * space, strings and numbers as ECMAScript's JSON.stringify writes them (RFC 8785 §3.2.2 defines them so).
 *
 * One value RFC 8785 has no spelling for: a string holding a lone surrogate. JSON allows `"\ud800"`, so a backend may
 * name or describe a tool with one, and the `canonicalize` library this replaced threw on it, failing the review of the
 * whole `tools/list` answer. It is written here as JSON.stringify writes it, the escape `\ud800`: always the same
 * text, the spelling of no other string (`x\ufffd` stays another definition), and read back by JSON.parse as the very
 * string, for the console and the policies that read an approved definition. Every other value is written as before,
 * byte for byte, so no pinned hash changes.
 *
 * A loop over a list of what is left to write, not recursion: an input schema may nest thousands of levels deep.
 *
 * @see RFC 8785 (JSON Canonicalization Scheme)
 */
export function canonicalJson(value: unknown): string {
  let text = '';
  // Last first: a value still to write, or punctuation and member names already written out.
  const left: Array<{ value: unknown } | string> = [{ value }];
  for (let next = left.pop(); next !== undefined; next = left.pop()) {
    if (typeof next === 'string') {
      text += next;
      continue;
    }
    const item = next.value;
    if (Array.isArray(item)) {
      text += '[';
      left.push(']');
      for (let index = item.length - 1; index >= 0; index--) left.push({ value: item[index] }, index > 0 ? ',' : '');
    } else if (item !== null && typeof item === 'object') {
      const members = Object.entries(item).filter(([, member]) => member !== undefined);
      members.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      text += '{';
      left.push('}');
      for (let index = members.length - 1; index >= 0; index--) {
        const [name, member] = members[index]!;
        left.push({ value: member }, `${index > 0 ? ',' : ''}${JSON.stringify(name)}:`);
      }
    } else {
      text += JSON.stringify(item) ?? 'null';
    }
  }
  return text;
}
