import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { JWT_BEARER_GRANT } from '../../src/protocol/oauth-urns.ts';
import { startDemo, type RunningDemo } from '../support/demo-harness.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { AUDIT_NAMESPACE } from '../../src/proxy/audit.ts';
import type { AuditRecord } from '../../src/records/audit.ts';

/**
 * Workload identity federation end to end on the demo: a workload asks the demo's workload-identity issuer (a
 * Kubernetes-style service-account token signer under the local IdP, publishing discovery and a JWKS) for a token
 * whose audience is Gatehouse's token endpoint, trades it with the jwt-bearer grant and no client credentials for an
 * app-only access token, and calls tools through the gateway with the MCP TypeScript SDK. A tool whose backend needs
 * the user's downstream token is refused, saying there is no user.
 */
describe('workload identity federation with the demo workload-identity issuer', () => {
  let demo: RunningDemo;

  before(async () => {
    demo = await startDemo();
  });
  after(async () => {
    await demo?.close();
  });

  async function workloadAccessToken(): Promise<string> {
    const minted = await fetch(`${demo.identityProviderUrl}/workload-identity/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ audience: `${demo.publicUrl}/token` }),
    });
    assert.equal(minted.status, 200);
    const { token } = (await minted.json()) as { token: string };
    const exchanged = await fetch(`${demo.publicUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion: token, resource: demo.mcpUrl }).toString(),
    });
    const body = (await exchanged.json()) as { access_token?: string; scope?: string };
    assert.equal(exchanged.status, 200, JSON.stringify(body));
    assert.equal(body.scope, 'mcp:tools graph:read');
    return body.access_token!;
  }

  it('a workload token becomes an app-only access token that works through the gateway', async () => {
    const accessToken = await workloadAccessToken();
    const claims = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
    assert.deepEqual([claims.sub, claims.client_id, claims.app_only, claims.aud], ['demo-workload', 'demo-workload', true, demo.mcpUrl]);
    const client = new Client({ name: 'demo-workload', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(demo.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${accessToken}` } } }));
    try {
      const echoed = (await client.callTool({ name: 'echo', arguments: { message: 'from a workload' } })) as { content: Array<{ text: string }>; isError?: boolean };
      assert.notEqual(echoed.isError, true, JSON.stringify(echoed));
      assert.match(echoed.content[0]!.text, /from a workload/);
      const graph = (await client.callTool({ name: 'get_graph_user_details', arguments: {} })) as { content: Array<{ text: string }>; isError?: boolean };
      // The sample server's RFC 8693 exchange of the app-only assertion is refused at /token (no user to act for).
      assert.equal(graph.isError, true, JSON.stringify(graph));
      assert.match(graph.content[0]!.text, /invalid_request/);
    } finally {
      await client.close();
    }
    // The issuance is in the gateway's audit trail (no person approved it anywhere else), beside the tool calls.
    const store = await createSqliteStore({ path: demo.sqlitePath!, clock: systemClock, purgeIntervalMs: 0 });
    try {
      let issued: AuditRecord[] = [];
      for (let tries = 0; issued.length === 0 && tries < 100; tries++) {
        issued = (await store.list<AuditRecord>(AUDIT_NAMESPACE)).map((entry) => entry.value).filter((record) => record.method === 'jwt-bearer workload');
        if (issued.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(
        issued.map(({ client, route, outcome, status }) => ({ client, route, outcome, status })),
        [{ client: 'demo-workload', route: new URL(demo.mcpUrl).pathname, outcome: 'allowed', status: 200 }],
      );
    } finally {
      await store.close();
    }
  });
});
