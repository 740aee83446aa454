/**
 * A fetch whose answers may be at most `maxBytes` long: what the gateway reads from the identity provider (discovery,
 * keys, token and userinfo answers) and from trusted issuers is read whole, and nothing else bounds it. A
 * misbehaving or compromised provider answering a gigabyte would otherwise be held in memory by every replica that
 * asked. A declared length over the limit fails at once; a body that grows past it fails while it streams, and the
 * reader sees the failure as it would a broken connection (the callers turn that into "the provider is unavailable").
 */
export class ResponseTooLargeError extends Error {
  constructor(url: string, maxBytes: number) {
    super(`the answer of ${hostOf(url)} is larger than ${maxBytes} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

/** The most a provider's answer may hold: its largest real answers (Entra's key set, discovery) are tens of KB. */
export const PROVIDER_RESPONSE_LIMIT_BYTES = 1024 * 1024;

export function cappedFetch(fetch: typeof globalThis.fetch, maxBytes: number): typeof globalThis.fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    // A HEAD answer has no body; its Content-Length is the GET's (a health probe must not read it as too large).
    if ((init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase() === 'HEAD') return response;
    const url = input instanceof Request ? input.url : String(input);
    const declared = Number(response.headers.get('content-length') ?? '0');
    if (declared > maxBytes) {
      await response.body?.cancel().catch(() => undefined);
      throw new ResponseTooLargeError(url, maxBytes);
    }
    if (response.body === null) return response;
    let received = 0;
    const limited = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          received += chunk.byteLength;
          if (received > maxBytes) controller.error(new ResponseTooLargeError(url, maxBytes));
          else controller.enqueue(chunk);
        },
      }),
    );
    return new Response(limited, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

function hostOf(url: string): string {
  return URL.parse(url)?.host ?? 'the server';
}
