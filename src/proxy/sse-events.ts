import { Transform } from 'node:stream';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

/**
 * The one SSE reader of the gateway, for every relay that looks inside a stream (the legacy `endpoint` rewrite,
 * the `tools/list` filter). Bytes are decoded with a streaming UTF-8 decoder, so a character split across two
 * network chunks is joined instead of becoming two U+FFFD; events are cut by eventsource-parser, which follows the
 * WHATWG grammar (LF, CR and CRLF line ends, `data:` with or without the space, multi-line data).
 *
 * Each complete event goes through `rewrite` (which may be asynchronous: the next event waits, so order is kept) and
 * is written again in canonical form. Comments (keep-alives) and `retry` are passed on at once, never held back
 * until the next event. What a client could not use is not relayed: unknown fields, and an event without `data`
 * (browsers ignore it, eventsource-parser does not report it).
 *
 * @see WHATWG HTML §9.2.6 (interpreting an event stream)
 */
export type SseEvent = EventSourceMessage;

/**
 * The longest event the gateway holds while it waits for the event's end: a stream it reads is parsed event by event,
 * and the parser would otherwise keep any number of bytes of an event that never ends (one backend, one stream, all
 * the gateway's memory). A `tools/list` with large schemas, or a tool result with an image, is far below it.
 */
export const SSE_EVENT_LIMIT_BYTES = 16 * 1024 * 1024;

export class SseEventTooLargeError extends Error {
  constructor(limit: number) {
    super(`an event of the stream is larger than ${limit} bytes`);
    this.name = 'SseEventTooLargeError';
  }
}

export interface SseEventTransformOptions {
  /** The longest event held (SSE_EVENT_LIMIT_BYTES by default); a longer one fails the stream. */
  maxEventBytes?: number;
  /** Called with the size of everything emitted (audit byte counts), so no extra counting stage is needed. */
  onBytes?: (bytes: number) => void;
  /**
   * Asked after a chunk read to an event's end: while it says true, what follows is passed on byte for byte, unparsed (the legacy stream once its `endpoint` event is rewritten and nothing is to be filtered: every
   * later message's answer travels on it, and parsing it only to write it out again costs each one a decode, a parse
   * and a re-encode), relayed as the backend sent it, unknown fields included. Asked again before each run of whole
   * events passed on, so a stream goes back to being read when it says false (a reload gave the route a policy).
   */
  passThroughAfter?: () => boolean;
  /**
   * Bytes that make events be read even while passing through (the legacy stream's later `endpoint` events, which
   * are dropped): looked for with `Buffer.includes` in each run of whole events, none decoded or parsed without them.
   */
  readAgainOn?: Buffer;
}

export function sseEventTransform(
  /** The event to write instead, or null to leave it out of the stream. */
  rewrite: (event: SseEvent) => SseEvent | null | Promise<SseEvent | null>,
  options: SseEventTransformOptions = {},
): Transform {
  const { onBytes, passThroughAfter, readAgainOn, maxEventBytes = SSE_EVENT_LIMIT_BYTES } = options;
  const decoder = new TextDecoder('utf-8');
  let passingThrough = false;
  /**
   * While passing through: the bytes after the last event end, held until their event ends (bounded as one event), in
   * one buffer grown by doubling: an event arriving in many small writes costs a copy or two of itself, in time and in
   * memory, however the backend cuts it (a list of its writes cost a Buffer object per byte written one at a time).
   */
  let held = NOTHING;
  let heldLength = 0;
  /** Whether what is held has a line end: without one, held bytes that open with `:` are a comment line still coming. */
  let heldHasLineEnd = false;
  /** Whether the last byte passed on was a CR: an LF opening the next write ends that same line. */
  let passedCr = false;
  /** Whether the text last read ended with a CR, which the parser holds until it knows whether an LF follows. */
  let endsInCr = false;
  const hold = (bytes: Buffer) => {
    if (heldLength + bytes.length > held.length) {
      const grown = Buffer.allocUnsafe(Math.max(held.length * 2, heldLength + bytes.length, 1024));
      held.copy(grown, 0, 0, heldLength);
      held = grown;
    }
    bytes.copy(held, heldLength);
    heldLength += bytes.length;
    heldHasLineEnd ||= bytes.includes(LF) || bytes.includes(CR);
  };
  const releaseHeld = () => {
    heldLength = 0;
    heldHasLineEnd = false;
    // A buffer grown for a large event is not kept for the small ones after it.
    if (held.length > 64 * 1024) held = NOTHING;
  };
  let out: Array<string | Promise<string>> = [];
  let failure: unknown;
  const parser = createParser({
    // The parser's own bound on what it holds: the unfinished line and the event's data so far, however the backend
    // interleaves them with comments or `retry` lines (which it reports as they come, mid-event).
    maxBufferSize: maxEventBytes,
    onError(error) {
      if (error.type === 'max-buffer-size-exceeded') failure ??= new SseEventTooLargeError(maxEventBytes);
    },
    onEvent(event) {
      try {
        const rewritten = rewrite(event);
        out.push(rewritten instanceof Promise ? rewritten.then(formatOrDrop) : formatOrDrop(rewritten));
      } catch (error) {
        failure ??= error;
      }
    },
    onComment: (comment) => out.push(`:${comment === '' ? '' : ` ${comment}`}\n\n`),
    // Passed on as the integer it must be (a client ignores any other `retry`); one too large to write as such
    // (`1e+26`) is dropped.
    onRetry: (retry) => {
      if (Number.isSafeInteger(retry) && retry >= 0) out.push(`retry: ${retry}\n\n`);
    },
  });

  /** Feeds decoded text; pushes what it completed, in order, once every asynchronous rewrite has settled. */
  const feed = (stream: Transform, text: string, done: (error?: Error | null) => void) => {
    // Once over its bound the parser refuses to be fed: the stream has already failed.
    if (failure === undefined) parser.feed(text);
    const parts = out;
    out = [];
    if (failure) {
      // The stream fails with the first error; rewrites already under way must not reject unobserved.
      for (const part of parts) if (typeof part !== 'string') part.catch(() => {});
      return done(failure as Error);
    }
    const release = (strings: string[]) => {
      const joined = strings.join('');
      if (joined.length > 0) {
        onBytes?.(Buffer.byteLength(joined));
        stream.push(joined);
      }
      done();
    };
    if (parts.every((part) => typeof part === 'string')) return release(parts as string[]);
    Promise.all(parts).then(release, (error: unknown) => done(error as Error));
  };

  /** Parses a chunk (from an event's start when it follows passing through); may switch to passing through after it. */
  const parse = (stream: Transform, chunk: Buffer, callback: (error?: Error | null) => void) => {
    const text = decoder.decode(chunk, { stream: true });
    // The parser holds a final CR however much follows it without a line end (`data: a\r\r` then `data: b`).
    const lineEnd = Math.max(text.lastIndexOf('\r'), text.lastIndexOf('\n'));
    if (lineEnd !== -1) endsInCr = text[lineEnd] === '\r' && lineEnd === text.length - 1;
    feed(stream, text, (error) => {
      // At a blank line the parser holds nothing and the decoder no partial character: switching is seamless.
      if (!error && passThroughAfter !== undefined && (text.endsWith('\n\n') || text.endsWith('\r\n\r\n'))) passingThrough = passThroughAfter();
      callback(error);
    });
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (!passingThrough) return parse(this, chunk, callback);
      // Passed on a whole event at a time, whatever the backend's writes cut: the bytes after the last event end wait
      // for their own, so reading again (asked before each, below) always starts at an event's start, and the bytes
      // looked for (`readAgainOn`) are never split between two chunks. Only the new bytes are searched for an end.
      let end = lastEventEnd(chunk, held.subarray(Math.max(0, heldLength - 3), heldLength));
      // A comment line cut between writes (a keep-alive) that this write ends: it, and whole comments after it, go.
      if (end === -1 && heldLength > 0 && held[0] === COLON && !heldHasLineEnd) end = firstLineEnd(chunk);
      // Comments right after an event end (keep-alives) go out at once: no event is under way there to be read again.
      if (end !== -1 || heldLength === 0) end = afterComments(chunk, end === -1 ? (passedCr && chunk[0] === LF ? 1 : 0) : end);
      if (end <= 0) {
        hold(chunk);
        if (heldLength > maxEventBytes) return callback(new SseEventTooLargeError(maxEventBytes));
        return callback();
      }
      const head = end === chunk.length ? chunk : chunk.subarray(0, end);
      const whole = heldLength === 0 ? head : Buffer.concat([held.subarray(0, heldLength), head]);
      releaseHeld();
      // Copied: a view would keep the whole write alive for as long as its tail waits.
      if (end < chunk.length) hold(chunk.subarray(end));
      passedCr = whole[whole.length - 1] === CR;
      if (passThroughAfter!() && (readAgainOn === undefined || !whole.includes(readAgainOn))) {
        onBytes?.(whole.length);
        return callback(null, whole);
      }
      passingThrough = false;
      const data = heldLength === 0 ? whole : Buffer.concat([whole, held.subarray(0, heldLength)]);
      releaseHeld();
      parse(this, data, callback);
    },
    flush(callback) {
      // An event not closed by a blank line when the stream ends is discarded, as a browser discards it; a line the
      // parser holds for want of the LF that may follow its CR is ended.
      releaseHeld();
      feed(this, decoder.decode() + (endsInCr ? '\n' : ''), callback);
    },
  });
}

const NOTHING = Buffer.alloc(0);
const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;

/**
 * The index in `chunk` just past its last blank line (two line ends in a row, each LF, CR or CRLF), or -1 if none;
 * `before` is the end of what came before it, for a blank line split between the two.
 */
function lastEventEnd(chunk: Buffer, before: Buffer): number {
  const at = (index: number) => (index >= 0 ? chunk[index] : before[before.length + index]);
  for (let index = chunk.length - 1; index >= 0; index--) {
    const code = chunk[index];
    if (code !== LF && code !== CR) continue;
    // The line end this byte closes: a CRLF is one.
    const start = code === LF && at(index - 1) === CR ? index - 1 : index;
    const previous = at(start - 1);
    if (previous === LF || previous === CR) return index + 1;
  }
  return -1;
}

/** Just past the first line end of `chunk` (a CRLF counted whole), or -1 if it has none. */
function firstLineEnd(chunk: Buffer): number {
  const lf = chunk.indexOf(LF);
  const cr = chunk.indexOf(CR);
  const at = cr === -1 ? lf : lf === -1 ? cr : Math.min(lf, cr);
  if (at === -1) return -1;
  return chunk[at] === CR && chunk[at + 1] === LF ? at + 2 : at + 1;
}

/** Past the whole comment lines (`:…` and their line end) that start at `from` in `chunk`. */
function afterComments(chunk: Buffer, from: number): number {
  let index = from;
  while (index < chunk.length && chunk[index] === COLON) {
    let end = index;
    while (end < chunk.length && chunk[end] !== LF && chunk[end] !== CR) end++;
    if (end === chunk.length) break;
    index = chunk[end] === CR && chunk[end + 1] === LF ? end + 2 : end + 1;
  }
  return index;
}

const formatOrDrop = (event: SseEvent | null): string => (event === null ? '' : formatSseEvent(event));

/** One event in the wire format; a multi-line `data` becomes one `data:` line per line. */
export function formatSseEvent(event: SseEvent): string {
  let text = '';
  if (event.id !== undefined) text += `id: ${event.id}\n`;
  if (event.event !== undefined) text += `event: ${event.event}\n`;
  for (const line of event.data.split('\n')) text += `data: ${line}\n`;
  return `${text}\n`;
}
