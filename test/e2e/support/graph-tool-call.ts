import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { createMemoryOAuthProvider } from './memory-oauth-provider.ts';

export type OAuthProvider = ReturnType<typeof createMemoryOAuthProvider>['provider'];

/**
 * Either SDK generation's client, with its own OAuth handling, calling the demo's Graph tool: connect (initialize),
 * then `tools/call get_graph_user_details`. With `callback`, the authorization it came back from is finished first.
 */
export async function callGraphToolWithSdk(sdk: 'v1' | 'v2', mcpUrl: string, provider: OAuthProvider, callback?: URL) {
  const code = callback?.searchParams.get('code') ?? undefined;
  if (sdk === 'v1') {
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    if (code !== undefined) await transport.finishAuth(code);
    const client = new Client({ name: 'e2e-step-up', version: '1.0.0' });
    try {
      await client.connect(transport);
      return await client.callTool({ name: 'get_graph_user_details', arguments: {} });
    } finally {
      await client.close();
    }
  }
  const transport = new TransportV2(new URL(mcpUrl), { authProvider: provider });
  if (callback !== undefined) await transport.finishAuth(callback.searchParams);
  const client = new ClientV2({ name: 'e2e-step-up-v2', version: '1.0.0' });
  try {
    await client.connect(transport);
    return await client.callTool({ name: 'get_graph_user_details', arguments: {} });
  } finally {
    await client.close();
  }
}
