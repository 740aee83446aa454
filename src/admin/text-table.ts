/**
 * Human output of the admin CLI: fixed-width tables and UTC times to the second. `--json` prints the same data as
 * JSON for scripts; tables are for reading.
 */

/** An epoch-ms time as ISO 8601 UTC to the second, or `-` when unknown. */
export function formatTime(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Terminal control characters in stored values (client names are chosen by whoever registered) are shown escaped. */
function printable(cell: string): string {
  // Matching control characters is the point here: they would move the cursor or recolour the terminal.
  // oxlint-disable-next-line no-control-regex
  return cell.replace(/[\u0000-\u001f\u007f-\u009f]/g, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`);
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
