import type { ConsoleReload } from '../console-state.ts';
import { code, html, renderConsolePage, type ConsoleView } from './layout.ts';

/** The outcome of the console's Reload button: what applied, what waits for a restart, or why the file was refused. */
export function renderReloadPage(view: ConsoleView, outcome: Awaited<ReturnType<ConsoleReload>>): string {
  const list = (items: readonly string[]) => `<ul>${items.map((item) => `<li>${code(item)}</li>`).join('')}</ul>`;
  if (!outcome.ok) {
    return renderConsolePage(
      view,
      `<p class="notice bad" role="alert">The configuration file has problems; nothing was changed and the running configuration keeps serving.</p>
${list(outcome.problems)}
<p><a href="/admin">Back to the overview</a></p>`,
    );
  }
  const { applied, needsRestart } = outcome.report;
  return renderConsolePage(
    view,
    `<p class="notice" role="status">${html(applied.length === 0 ? 'Reloaded: nothing this reload can change was different.' : 'Reloaded: these now apply on this replica.')}</p>
${applied.length === 0 ? '' : list(applied)}
${needsRestart.length === 0 ? '' : `<h2>Changed, but applied only after a restart</h2>${list(needsRestart)}`}
<p><a href="/admin">Back to the overview</a></p>`,
  );
}
