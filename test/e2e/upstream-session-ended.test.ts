import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { decodeJwt } from 'jose';
import type { Browser } from 'playwright-core';
import { generateKeySet, serializeKeySet } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import { forgetDownstreamTokens } from '../../src/records/downstream-tokens.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { deleteUpstreamTokens, loadUpstreamTokens, saveUpstreamTokens } from '../../src/upstream/token-vault.ts';
import { launchBrowser, signInWithBrowser, startDemo, startRedirectListener, type RedirectListener, type RunningDemo } from '../support/demo-harness.ts';
import { callGraphToolWithSdk, type OAuthProvider } from './support/graph-tool-call.ts';
import { createMemoryOAuthProvider } from './support/memory-oauth-provider.ts';

/**
 * A user whose upstream session ended while their grant lives on: the IdP refuses the refresh token the gateway holds
 * for them (revoked sessions, a password change: Entra's AADSTS50173), or the gateway holds no upstream tokens for
 * them at all. Only a sign-in at the IdP helps, and the client must be told so in a way it acts on: the Graph tool's
 * call is answered with the gateway's 401 and the grant ends, so the SDK's refresh is refused and it re-authorizes;
 * that authorization goes to the IdP (not the gateway's own session, which would issue a grant on the same dead
 * upstream session), and the same call then succeeds. Both ways a backend gets its Graph token: the backend exchanging
 * the gateway's identity assertion at `/token` (its refusal arrives as the backend's `insufficient_claims`), and the
 * gateway forwarding an on-behalf-of token itself.
 */
const routes = [
  { route: 'backend token exchange (identity assertion)', mcpIdentity: undefined },
  { route: 'gateway on-behalf-of (identity.mode: obo)', mcpIdentity: { mode: 'obo', downstream: 'graph' } },
] as const;

const endings = ['the IdP refuses the refresh token', 'the gateway holds no upstream tokens'] as const;

for (const { route, mcpIdentity } of routes) describe(`upstream session ended — ${route}`, () => {
  let demo: RunningDemo;
  let listener: RedirectListener;
  let browser: Browser;
  const keySet = generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' });
  const keysFile = join(tmpdir(), `gatehouse-upstream-ended-${process.pid}-${mcpIdentity === undefined ? 'assertion' : 'obo'}.json`);

  before(async () => {
    await writeFile(keysFile, serializeKeySet(keySet));
    listener = await startRedirectListener();
    demo = await startDemo({ config: { keys: { source: 'file', file: keysFile } }, ...(mcpIdentity ? { mcpIdentity } : {}) });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
    await listener?.close();
  });

  const callGraphTool = (provider: OAuthProvider, callback?: URL) => callGraphToolWithSdk('v1', demo.mcpUrl, provider, callback);

  for (const ending of endings) {
    it(`${ending}: the client is sent to sign in at the IdP, then the call succeeds`, async () => {
      const user = demo.users.find((candidate) => candidate.username === 'alex');
      assert.ok(user);
      const { provider, state } = createMemoryOAuthProvider({ redirectUrl: listener.url, clientName: 'E2E upstream-ended client' });
      const context = await browser.newContext();
      try {
        await assert.rejects(callGraphTool(provider), UnauthorizedError);
        assert.ok(state.authorizationUrl);
        const first = await signInWithBrowser({ context, authorizationUrl: state.authorizationUrl.href, user, redirectUri: listener.url });
        const working = await callGraphTool(provider, first.callbackUrl);
        assert.equal(working.isError ?? false, false, JSON.stringify(working.content));

        // End the user's upstream session behind the gateway's back, and drop every token made from it, so the next
        // Graph token must come from that session: the broker's cache, and (a new access token, so a new identity
        // assertion) the backend's own cache of the token it exchanged for.
        assert.ok(state.tokens && demo.sqlitePath);
        const subject = decodeJwt(state.tokens.access_token).sub;
        assert.ok(subject);
        const store = await createSqliteStore({ path: demo.sqlitePath, clock: systemClock, purgeIntervalMs: 0 });
        try {
          const vault = { store, keyring: keyringFromKeySet(keySet), clock: systemClock };
          const held = await loadUpstreamTokens(vault, subject);
          assert.ok(held?.refreshToken, 'the sign-in left upstream tokens with a refresh token');
          if (ending === 'the IdP refuses the refresh token') {
            await saveUpstreamTokens(vault, subject, { ...held, refreshToken: 'revoked-at-the-idp', expiresAt: Date.now() - 60_000 });
          } else {
            assert.equal(await deleteUpstreamTokens(vault, subject), true);
          }
          await forgetDownstreamTokens(store, subject);
        } finally {
          await store.close();
        }
        // The client refreshes, as it does when its access token expires: a new token, so a new identity assertion.
        const refreshed = await fetch(`${demo.publicUrl}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: state.tokens.refresh_token ?? '', client_id: state.clientInformation?.client_id ?? '' }),
        });
        assert.equal(refreshed.status, 200);
        state.tokens = (await refreshed.json()) as typeof state.tokens;

        // The Graph call is refused with a 401 that ended the grant, so the SDK's refresh is refused too and it sends
        // the user to authorize.
        const redirectsBefore = state.redirects;
        await assert.rejects(callGraphTool(provider), UnauthorizedError);
        assert.equal(state.redirects, redirectsBefore + 1, 'the SDK started a new authorization');
        assert.ok(state.authorizationUrl);

        // The same browser: the gateway and the IdP both still have a session. The gateway's must not be enough.
        const again = await signInWithBrowser({ context, authorizationUrl: state.authorizationUrl.href, user, redirectUri: listener.url });
        const result = await callGraphTool(provider, again.callbackUrl);
        assert.equal(result.isError ?? false, false, JSON.stringify(result.content));
        assert.match(JSON.stringify(result.content), new RegExp(user.email.replace(/[.]/g, '\\.')));
        assert.equal(state.redirects, redirectsBefore + 1, 'one authorization settled it');
      } finally {
        await context.close();
      }
    });
  }
});
