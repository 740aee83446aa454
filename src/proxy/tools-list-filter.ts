import { Transform } from 'node:stream';

/**
 * Removes tools the caller may not call from `tools/list` results, so clients do not offer the model tools that
 * would be refused. Applied only when some tool is denied to this caller; otherwise responses stream untouched.
 * Works on a JSON body and on an SSE stream (event by event; comments and other events pass through at once).
 */
export function filterToolsResult(message: unknown, denied: ReadonlySet<string>): unknown {
  if (!message || typeof message !== 'object') return message;
  const result = (message as { result?: unknown }).result;
  if (!result || typeof result !== 'object') return message;
  const tools = (result as { tools?: unknown }).tools;
  if (!Array.isArray(tools)) return message;
  const kept = tools.filter((tool) => !(tool && typeof tool === 'object' && denied.has(String((tool as { name?: unknown }).name))));
  return { ...message, result: { ...result, tools: kept } };
}

export function filterToolsListJson(body: Buffer, denied: ReadonlySet<string>): Buffer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  const filtered = Array.isArray(parsed) ? parsed.map((m) => filterToolsResult(m, denied)) : filterToolsResult(parsed, denied);
  return Buffer.from(JSON.stringify(filtered));
}

function rewriteEvent(event: string, denied: ReadonlySet<string>): string {
  const lines = event.split(/\r?\n/);
  const data = lines.filter((line) => line.startsWith('data:')).map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
  if (data.length === 0) return event;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.join('\n'));
  } catch {
    return event;
  }
  const filtered = filterToolsResult(parsed, denied);
  if (filtered === parsed) return event;
  const others = lines.filter((line) => !line.startsWith('data:'));
  return [...others, `data: ${JSON.stringify(filtered)}`].join('\n');
}

/** @see WHATWG HTML §9.2 server-sent events — events end at a blank line. */
export function toolsListSseFilter(denied: ReadonlySet<string>): Transform {
  let pending = '';
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      pending += chunk.toString('utf8');
      let out = '';
      for (;;) {
        const match = /\r?\n\r?\n/.exec(pending);
        if (!match) break;
        const event = pending.slice(0, match.index);
        pending = pending.slice(match.index + match[0].length);
        out += `${rewriteEvent(event, denied)}\n\n`;
      }
      callback(null, out.length > 0 ? out : undefined);
    },
    flush(callback) {
      callback(null, pending.length > 0 ? rewriteEvent(pending, denied) : undefined);
    },
  });
}
