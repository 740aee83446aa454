import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Client, CrossAppAccessProvider, requestJwtAuthorizationGrant, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { Browser } from 'playwright-core';
import { JWT_BEARER_GRANT } from '../../src/protocol/oauth-urns.ts';
import { launchBrowser, signInWithBrowser, startDemo, startRedirectListener, type RedirectListener, type RunningDemo } from '../support/demo-harness.ts';

/**
 * Enterprise-Managed Authorization end to end on the demo: the local IdP is the enterprise IdP. A user signs in to an
 * MCP client there (headless Chromium, the IdP's form), the client exchanges the ID token at the IdP for an ID-JAG
 * (RFC 8693) and the MCP TypeScript SDK's `CrossAppAccessProvider` presents it to Gatehouse (jwt-bearer), then calls
 * tools through the gateway as that user — no Gatehouse consent page, no Gatehouse sign-in.
 */
const CLIENT_ID = 'enterprise-chat';
const SECRET = 'enterprise-chat-secret-for-e2e';

describe('Enterprise-Managed Authorization (ID-JAG) with the local IdP as enterprise IdP', () => {
  let demo: RunningDemo;
  let listener: RedirectListener;
  let browser: Browser;

  before(async () => {
    listener = await startRedirectListener();
    demo = await startDemo({ config: { authorization: { clients: [{ clientId: CLIENT_ID, clientSecret: SECRET, grantTypes: [JWT_BEARER_GRANT] }] } } });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
    await listener?.close();
  });

  /** Single sign-on to the MCP client at the enterprise IdP: authorization code + PKCE, then the ID token. */
  async function signInAtIdp(): Promise<string> {
    const verifier = randomBytes(32).toString('base64url');
    const authorize = new URL(`${demo.identityProviderUrl}/authorize`);
    authorize.search = new URLSearchParams({
      client_id: CLIENT_ID,
      response_type: 'code',
      redirect_uri: listener.url,
      scope: 'openid profile email',
      state: randomBytes(8).toString('hex'),
      nonce: randomBytes(8).toString('hex'),
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    const context = await browser.newContext();
    try {
      const { callbackUrl } = await signInWithBrowser({ context, authorizationUrl: authorize.href, user: demo.users[0]!, redirectUri: listener.url });
      const response = await fetch(`${demo.identityProviderUrl}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: CLIENT_ID, client_secret: SECRET, grant_type: 'authorization_code', code: callbackUrl.searchParams.get('code') ?? '', redirect_uri: listener.url, code_verifier: verifier }).toString(),
      });
      const tokens = (await response.json()) as { id_token?: string };
      assert.ok(tokens.id_token, JSON.stringify(tokens));
      return tokens.id_token;
    } finally {
      await context.close();
    }
  }

  it('the SDK CrossAppAccessProvider turns an IdP-issued ID-JAG into a Gatehouse token and calls tools as the user', async () => {
    const idToken = await signInAtIdp();
    const provider = new CrossAppAccessProvider({
      clientId: CLIENT_ID,
      clientSecret: SECRET,
      expectedIssuer: demo.publicUrl,
      assertion: async (ctx) =>
        (
          await requestJwtAuthorizationGrant({
            tokenEndpoint: `${demo.identityProviderUrl}/token`,
            audience: ctx.authorizationServerUrl,
            resource: ctx.resourceUrl,
            idToken,
            clientId: CLIENT_ID,
            clientSecret: SECRET,
            ...(ctx.scope === undefined ? {} : { scope: ctx.scope }),
          })
        ).jwtAuthGrant,
    });
    const client = new Client({ name: 'enterprise-chat', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(demo.mcpUrl), { authProvider: provider }));
    try {
      const { tools } = await client.listTools();
      assert.ok(tools.some((tool) => tool.name === 'hello'));
      const result = (await client.callTool({ name: 'hello', arguments: {} })) as { content: Array<{ text: string }>; isError?: boolean };
      assert.notEqual(result.isError, true, JSON.stringify(result));
      assert.match(result.content[0]!.text, new RegExp(demo.users[0]!.name.split(' ')[0]!));
    } finally {
      await client.close();
    }
    const issued = provider.tokens()?.access_token ?? '';
    const claims = JSON.parse(Buffer.from(issued.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
    assert.equal(claims.client_id, CLIENT_ID);
    assert.equal(claims.aud, demo.mcpUrl);
    assert.match(String(claims.sub), /#/);
  });
});
