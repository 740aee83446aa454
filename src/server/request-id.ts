import type { IncomingMessage } from 'node:http';
import type { Random } from '../runtime/random.ts';

/**
 * Request ids tie a client's report to the server log and the audit record. An `X-Request-Id` from a proxy in front
 * is kept so one id follows the request end to end — only when a proxy is declared (`server.trustProxy`): without
 * one, the header is whatever the client wrote, and a client could give its requests another request's id — and only
 * if it is short and plain, since it is echoed back and written to logs (no header or log injection through it).
 */
export const requestIdHeader = 'x-request-id';

const saneRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Generated ids are a random per-process prefix and a counter: unique across replicas and restarts without drawing
 * random bytes on every request (a request id is a correlation handle, not a secret, so it need not be unguessable).
 */
export function createRequestIdGenerator(random: Random, options: { fromProxy: boolean }): (req: IncomingMessage) => string {
  const prefix = random.token(6);
  let counter = 0;
  return (req) => {
    const offered = options.fromProxy ? req.headers[requestIdHeader] : undefined;
    if (typeof offered === 'string' && saneRequestId.test(offered)) return offered;
    counter += 1;
    return `${prefix}-${counter.toString(36)}`;
  };
}
