import { visibleText } from '../web/html.ts';

/**
 * Human output of the admin CLI: fixed-width tables and UTC times to the second. `--json` prints the same data as
 * JSON for scripts; tables are for reading.
 */

/** An epoch-ms time as ISO 8601 UTC to the second, or `-` when unknown. */
export function formatTime(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Terminal control characters, bidirectional formatting and every other invisible character in stored values, shown
 * as their code points (web/html.ts `visibleText`, as the console marks them). Client names are chosen by whoever
 * registered, tool names by a backend: an ESC sequence would move the cursor, recolour or retitle the operator's
 * terminal, a right-to-left override (U+202E) would make a line read other than it is, and tag characters print as
 * nothing.
 */
export const printable = visibleText;

/**
 * Human output as a whole (lines of text, line breaks kept): what `printable` does for a table's cells, for the
 * lines a command writes around them ("Name: …", a confirmation question).
 */
export function terminalSafe(text: string): string {
  return text.split('\n').map(printable).join('\n');
}

export function formatTable(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows].map((row) => row.map(printable));
  const widths = headers.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

/** JSON for `--json`: epoch-ms fields ending in `At` or named `time` become ISO strings, the rest stays as is. */
export function toJsonOutput(value: unknown): string {
  return `${JSON.stringify(value, (key, field: unknown) => ((key.endsWith('At') || key === 'time') && typeof field === 'number' ? formatTime(field) : field), 2)}\n`;
}
