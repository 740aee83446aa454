import { styleText } from 'node:util';
import { pino, type DestinationStream } from 'pino';

/**
 * Where log lines go and in what form. Production (stdout not a terminal: systemd, containers, log shippers) gets
 * pino's JSON lines exactly as before. A person — the demo, or anyone running Gatehouse in a terminal — gets one short,
 * coloured line per record instead: time, level, message, then the fields, with a request shown as
 * `GET /mcp → 200 (12 ms)`. `log.format` forces either. The formatter runs in-process and writes synchronously, so
 * lines keep their order with what the CLI prints itself (the start-up banner); a worker-thread transport would not.
 */
export type LogFormat = 'json' | 'pretty';

export function chooseLogFormat(options: { format: 'auto' | LogFormat; mode: string; stdoutIsTTY: boolean }): LogFormat {
  if (options.format !== 'auto') return options.format;
  return options.stdoutIsTTY || options.mode === 'demo' ? 'pretty' : 'json';
}

type Style = Parameters<typeof styleText>[0];
const LEVELS: Record<number, { label: string; style: Style }> = {
  10: { label: 'TRACE', style: 'gray' },
  20: { label: 'DEBUG', style: 'blue' },
  30: { label: 'INFO ', style: 'green' },
  40: { label: 'WARN ', style: 'yellow' },
  50: { label: 'ERROR', style: 'red' },
  60: { label: 'FATAL', style: ['bgRed', 'white'] },
};
/** Fields every record has, or that the line shows in its own place. */
const SHOWN_ELSEWHERE = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'req', 'res', 'responseTime', 'reqId', 'err']);

/**
 * What a terminal would act on rather than show: C0 and C1 controls (escape sequences move the cursor, erase lines,
 * set the window title), DEL, and the bidirectional overrides that reorder what follows them. A logged value may come
 * from a request (a header, a query parameter an IdP error echoes); JSON output escapes the C0 ones only.
 */
// oxlint-disable-next-line no-control-regex -- control characters are exactly what is escaped here
const TERMINAL_CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Each such character written as `\u…`, so the line shows it instead of the terminal obeying it. */
export const terminalSafe = (text: string): string =>
  text.replace(TERMINAL_CONTROLS, (character) => `\\u${(character.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);

const fieldValue = (value: unknown): string =>
  terminalSafe(typeof value === 'string' && !/\s/.test(value) && value !== '' ? value : (JSON.stringify(value) ?? String(value)));

/** One pino JSON record as one terminal line (plus the stack, indented, for an error). Not JSON → passed through. */
export function formatPrettyLine(line: string, colors: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const paint = (style: Style, text: string) => (colors ? styleText(style, text, { validateStream: false }) : text);
  const level = LEVELS[Number(record.level)] ?? { label: String(record.level).padEnd(5), style: 'white' as Style };
  const time = typeof record.time === 'number' ? new Date(record.time).toISOString().slice(11, 19) : '--:--:--';
  const req = record.req as { method?: string; url?: string } | undefined;
  const res = record.res as { statusCode?: number } | undefined;
  const parts = [paint('gray', time), paint(level.style, level.label)];
  if (req?.method && res?.statusCode !== undefined) {
    const status = res.statusCode;
    const ms = typeof record.responseTime === 'number' ? ` (${Math.round(record.responseTime)} ms)` : '';
    parts.push(`${terminalSafe(`${req.method} ${req.url ?? ''}`)} → ${paint(status >= 500 ? 'red' : status >= 400 ? 'yellow' : 'green', String(status))}${ms}`);
  } else {
    parts.push(terminalSafe(String(record.msg ?? '')));
    if (req?.method) parts.push(terminalSafe(`${req.method} ${req.url ?? ''}`));
  }
  const fields = Object.entries(record)
    .filter(([key]) => !SHOWN_ELSEWHERE.has(key))
    .map(([key, value]) => paint('gray', `${terminalSafe(key)}=`) + fieldValue(value));
  let text = [...parts, ...fields].join(' ');
  const err = record.err as { type?: string; message?: string; stack?: string } | undefined;
  if (err) {
    const stack = err.stack ? `\n${err.stack.split('\n').slice(1).map(terminalSafe).join('\n')}` : '';
    text += ` ${paint('red', terminalSafe(`${err.type ?? 'Error'}: ${err.message ?? ''}`))}${stack}`;
  }
  return `${text}\n`;
}

/** pino's own synchronous stdout writer, with each line reformatted first. */
export function prettyDestination(options: { colors: boolean; target?: { write(text: string): unknown } }): DestinationStream {
  const target = options.target ?? pino.destination({ dest: 1, sync: true });
  return {
    write(line: string) {
      // Fastify's "incoming request" line repeats what the "request completed" line says: one line per request.
      if (line.includes('"msg":"incoming request"')) return;
      target.write(formatPrettyLine(line, options.colors));
    },
  };
}
