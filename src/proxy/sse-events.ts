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
   * Asked after each chunk that ended at an event boundary: while it says true, what follows is passed on byte for
   * byte, unparsed (the legacy stream once its `endpoint` event is rewritten and nothing is to be filtered: every
   * later message's answer travels on it, and parsing it only to write it out again costs each one a decode, a parse
   * and a re-encode), relayed as the backend sent it, unknown fields included. Asked again before each chunk that
   * follows one ending an event, so a stream goes back to being read when it says false (a reload gave the route a
   * policy).
   */
  passThroughAfter?: () => boolean;
  /**
   * Bytes that make a chunk be read even while passing through, when it starts an event (the legacy stream's later
   * `endpoint` events, which are dropped): `Buffer.indexOf`, no decode or parse for the chunks without them.
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
  /** Whether the last chunk passed on unparsed ended an event (the parser would hold nothing there). */
  let atEventEnd = false;
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

  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      // Asked again before a chunk that follows an event's end: what stepped aside may have to read the stream again.
      if (passingThrough && (!atEventEnd || (passThroughAfter!() && (readAgainOn === undefined || !chunk.includes(readAgainOn))))) {
        onBytes?.(chunk.length);
        atEventEnd = endsAnEvent(chunk);
        return callback(null, chunk);
      }
      passingThrough = false;
      const text = decoder.decode(chunk, { stream: true });
      feed(this, text, (error) => {
        // At a blank line the parser holds nothing and the decoder no partial character: switching is seamless.
        if (!error && passThroughAfter !== undefined && (text.endsWith('\n\n') || text.endsWith('\r\n\r\n'))) {
          passingThrough = passThroughAfter();
          atEventEnd = true;
        }
        callback(error);
      });
    },
    flush(callback) {
      // An event not closed by a blank line when the stream ends is discarded, as a browser discards it.
      feed(this, decoder.decode(), callback);
    },
  });
}

/** Whether a chunk ends with a blank line (`\n\n` or `\r\n\r\n`): where the parser holds nothing. */
function endsAnEvent(chunk: Buffer): boolean {
  const length = chunk.length;
  return length >= 2 && chunk[length - 1] === 0x0a && (chunk[length - 2] === 0x0a || (length >= 4 && chunk[length - 2] === 0x0d && chunk[length - 3] === 0x0a && chunk[length - 4] === 0x0d));
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
