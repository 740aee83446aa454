import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UnauthorizedError as UnauthorizedV2 } from '@modelcontextprotocol/client';
import { UnauthorizedError as UnauthorizedV1 } from '@modelcontextprotocol/sdk/client/auth.js';
import type { Browser, BrowserContext } from 'playwright-core';
import { launchBrowser, signInWithBrowser, startDemo, startRedirectListener, type DemoUser, type RedirectListener, type RunningDemo } from '../support/demo-harness.ts';
import { callGraphToolWithSdk, type OAuthProvider } from './support/graph-tool-call.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';

/**
 * Conditional Access step-up, end to end: a user whose directory (Graph) access requires MFA calls the Graph-backed
 * tool. The local IdP refuses the on-behalf-of exchange as Entra does (AADSTS50076 with a `claims` challenge); the
 * gateway answers 401 and ends the grant, so the SDK's refresh fails and it re-authorizes in the browser; that sign-in
 * carries the challenge to the IdP, which asks for the second factor; the same tool call then succeeds, with no step
 * from the user beyond the sign-in itself. Both ways a backend gets its Graph token: the demo's default (the backend
 * exchanges the gateway's identity assertion at the gateway's token endpoint and answers `insufficient_claims`), and a
 * route where the gateway forwards the on-behalf-of token itself (`identity.mode: obo`).
 */
const variants = [
  { sdk: 'v1', route: 'backend token exchange (identity assertion)', mcpIdentity: undefined },
  { sdk: 'v1', route: 'gateway on-behalf-of (identity.mode: obo)', mcpIdentity: { mode: 'obo', downstream: 'graph' } },
  { sdk: 'v2', route: 'backend token exchange (identity assertion)', mcpIdentity: undefined },
] as const;

/** What both SDKs throw when they had to send the user to the browser (the `UnauthorizedError` of each generation). */
const sentToBrowser = (error: unknown): boolean => error instanceof UnauthorizedV1 || error instanceof UnauthorizedV2;

for (const { sdk, route: routeMode, mcpIdentity } of variants) describe(`Conditional Access step-up with the MCP SDK ${sdk} client and Chromium — ${routeMode}`, () => {
  let demo: RunningDemo;
  let listener: RedirectListener;
  let browser: Browser;

  before(async () => {
    listener = await startRedirectListener();
    demo = await startDemo({ userFlags: { adele: { requireMfa: true } }, ...(mcpIdentity ? { mcpIdentity } : {}) });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
    await listener?.close();
  });

  const userNamed = (username: string): DemoUser => {
    const user = demo.users.find((candidate) => candidate.username === username);
    assert.ok(user);
    return user;
  };

  const callGraphTool = (provider: OAuthProvider, callback?: URL) => callGraphToolWithSdk(sdk, demo.mcpUrl, provider, callback);

  async function codeFrom(context: BrowserContext, authorizationUrl: URL, user: DemoUser) {
    const signIn = await signInWithBrowser({ context, authorizationUrl: authorizationUrl.href, user, redirectUri: listener.url });
    assert.ok(signIn.callbackUrl.searchParams.get('code'), signIn.callbackUrl.href);
    return { callback: signIn.callbackUrl, pages: signIn.pages };
  }

  for (const browserState of ['the browser that signed in before (gateway and IdP sessions)', 'a fresh browser (no session anywhere)'] as const) {
    it(`the MFA user re-authorizes through the IdP's MFA step, then the tool call succeeds — ${browserState}`, async () => {
      const user = userNamed('adele');
      const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'E2E step-up client' });
      const context = await browser.newContext();
      try {
        await assert.rejects(callGraphTool(provider), sentToBrowser);
        assert.ok(state.authorizationUrl);
        const first = await codeFrom(context, state.authorizationUrl, user);
        assert.ok(!first.pages.includes('mfa'), 'no MFA before the IdP asked for it');

        // The exchange for Graph needs MFA: the call is refused with a challenge the SDK acts on by itself (its
        // refresh is refused, so it sends the user to the browser again).
        const redirectsBefore = state.redirects;
        await assert.rejects(callGraphTool(provider, first.callback), sentToBrowser);
        assert.equal(state.redirects, redirectsBefore + 1, 'the SDK started a new authorization');
        assert.ok(state.authorizationUrl);

        const stepUpContext = browserState.startsWith('the browser') ? context : await browser.newContext();
        try {
          const second = await codeFrom(stepUpContext, state.authorizationUrl, user);
          assert.ok(second.pages.includes('mfa'), `the IdP asked for the second factor (pages: ${second.pages.join(', ')})`);
          const result = await callGraphTool(provider, second.callback);
          assert.equal(result.isError ?? false, false, JSON.stringify(result.content));
          assert.match(JSON.stringify(result.content), new RegExp(user.email.replace(/[.]/g, '\\.')));
        } finally {
          if (stepUpContext !== context) await stepUpContext.close();
        }

        // Settled: the next call needs no sign-in at all.
        const redirectsAfter = state.redirects;
        const again = await callGraphTool(provider);
        assert.equal(again.isError ?? false, false);
        assert.equal(state.redirects, redirectsAfter);
      } finally {
        await context.close();
      }
    });
  }

  it('a user without the MFA policy is never sent back', async () => {
    const user = userNamed('alex');
    const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'E2E no step-up client' });
    const context = await browser.newContext();
    try {
      await assert.rejects(callGraphTool(provider), sentToBrowser);
      assert.ok(state.authorizationUrl);
      const { callback, pages } = await codeFrom(context, state.authorizationUrl, user);
      assert.ok(!pages.includes('mfa'));
      const result = await callGraphTool(provider, callback);
      assert.equal(result.isError ?? false, false, JSON.stringify(result.content));
      assert.equal(state.redirects, 1);
    } finally {
      await context.close();
    }
  });
});
