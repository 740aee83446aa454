import { startMcpBackend } from '../../test/support/mcp-backends.ts';
import { startCannedBackend } from './canned.ts';
import { startHoldBackend } from './hold.ts';

/**
 * The backends' own child process (so no target's CPU is mixed with theirs): the canned replies, the SDK-built
 * fixtures of the test suite answering JSON and SSE, the v1 SDK's legacy HTTP+SSE server, and the stream holder.
 * Prints their URLs as one JSON line (a BackendUrls).
 */
export interface BackendUrls {
  canned: string;
  json: string;
  sse: string;
  /** Origin of the legacy server: `GET /sse`, `POST /messages`. */
  legacy: string;
  hold: string;
}

// The fixtures record request headers for tests; under load they would only pile up.
const urls: BackendUrls = {
  canned: (await startCannedBackend()).url,
  json: (await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json', recordHeaders: false })).url,
  sse: (await startMcpBackend({ kind: 'v2-stateless', responseMode: 'sse', recordHeaders: false })).url,
  legacy: (await startMcpBackend({ kind: 'v1-sse', recordHeaders: false })).url,
  hold: (await startHoldBackend()).url,
};
process.stdout.write(`${JSON.stringify(urls)}\n`);
process.on('SIGTERM', () => process.exit(0));
