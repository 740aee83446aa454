import type { AccountRecord } from '../../records/account.ts';
import { INVISIBLE_CHARACTERS, NAME_DISPLAY_LIMIT, visibleName } from '../../web/html.ts';
import { code, consoleNameHtml, html } from './layout.ts';

/**
 * People and apps by name on the console pages: the display name (and e-mail) a person recognises, with the subject
 * or client id — what `admin.users`, policies and the CLI match — in the element's title, shown on hover. An id with
 * no name known (an account never seen, a CIMD client) is shown as the id itself.
 */
export function personCell(subject: string | undefined, accounts: ReadonlyMap<string, AccountRecord>): string {
  if (subject === undefined) return '<span class="muted">–</span>';
  const account = accounts.get(subject);
  const label = visibleName(account?.name) ?? visibleName(account?.email);
  if (label === undefined) return code(subject);
  const email = label !== account?.email && visibleName(account?.email) !== undefined ? `<br><span class="muted">${consoleNameHtml(account!.email!)}</span>` : '';
  return `<span class="named" title="${html(subject)}">${consoleNameHtml(label)}</span>${email}`;
}

export function clientCell(clientId: string | undefined, names: ReadonlyMap<string, string>): string {
  if (clientId === undefined) return '<span class="muted">–</span>';
  return namedId(names.get(clientId), clientId);
}

/** A name with its id on hover, or the id alone when there is no name (or one that shows as nothing). */
export function namedId(name: string | undefined, id: string): string {
  const label = visibleName(name);
  return label === undefined ? code(id) : `<span class="named" title="${html(id)}">${consoleNameHtml(label)}</span>`;
}

/**
 * The most suggestions a filter field offers, and the longest one: the values include every registered client's
 * name, and anyone may register (the field still filters on anything typed).
 */
const SUGGESTION_LIMIT = 200;
const SUGGESTION_LENGTH_LIMIT = NAME_DISPLAY_LIMIT;

/**
 * Whether a value can be offered as a suggestion. An option's value is shown and sent back as it is, not as the page
 * shows a name: an invisible character makes a second entry that looks like another ("Sample Graph MCP server\u200b"
 * beside the real one), and some do not come back at all (the HTML parser reads U+0000 as U+FFFD, UTF-8 cannot write
 * a lone surrogate, a text field drops CR and LF), so picking one filtered on another string.
 */
export const suggestible = (value: string): boolean =>
  value.length <= SUGGESTION_LENGTH_LIMIT && value.search(INVISIBLE_CHARACTERS) === -1 && visibleName(value) !== undefined;

/**
 * A <datalist> of suggestions for a filter field (values are what the filter resolves: names, e-mails, ids); a value
 * that is not `suggestible` is left out (the field still filters on it typed, and on the id it belongs to).
 */
export function suggestions(id: string, values: Iterable<string>): string {
  const offered = [...new Set(values)].filter(suggestible).sort().slice(0, SUGGESTION_LIMIT);
  const options = offered.map((value) => `<option value="${html(value)}"></option>`).join('');
  return `<datalist id="${html(id)}">${options}</datalist>`;
}
