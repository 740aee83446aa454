import type { BackendName } from './targets/target.ts';

/**
 * The request each scenario sends: a `tools/call` of `echo`. The v2 SDK backend answers a 2026-07-28 request
 * (per-request `_meta` envelope, mirrored `Mcp-Method`/`Mcp-Name`) with plain JSON and a stateless 2025-11-25
 * request with a one-event SSE stream; the legacy scenario posts to an open HTTP+SSE session (answer `202`, the
 * result travels on the stream).
 */
export interface Scenario {
  key: string;
  title: string;
  backend: BackendName;
  headers: Record<string, string>;
  body: string;
}

const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } });
const streamableHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };
const modernCall = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: {
    name: 'echo',
    arguments: { text: 'hello' },
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
});
const modernHeaders = { ...streamableHeaders, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'echo' };

export const SCENARIOS: Scenario[] = [
  { key: 'canned', title: 'canned reply (bare node:http), JSON', backend: 'canned', headers: modernHeaders, body: modernCall },
  { key: 'json', title: 'SDK backend, JSON response (2026-07-28)', backend: 'json', headers: modernHeaders, body: modernCall },
  { key: 'sse', title: 'SDK backend, SSE response (2025-11-25)', backend: 'sse', headers: streamableHeaders, body: call },
  { key: 'legacy', title: 'legacy HTTP+SSE, message POST (202)', backend: 'legacy', headers: { 'content-type': 'application/json' }, body: call },
];
