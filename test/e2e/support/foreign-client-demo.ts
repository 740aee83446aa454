import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { ACCESS_TOKEN_CLOCK_SKEW_SECONDS } from '../../../src/proxy/verify-access-token.ts';
import { launchBrowser, signInWithBrowser, startDemo, type RunningDemo } from '../../support/demo-harness.ts';
import { startCimdHost, type CimdHost } from './cimd-host.ts';

/**
 * The stage every foreign client test shares: the demo with 4-second access tokens (so a refresh can be proven in
 * seconds), an HTTPS host for Client ID Metadata Documents whose redirect URIs the tests add as they pick callback
 * ports, and one Chromium that answers whatever authorization URL a client opens, in a fresh browser context each time
 * (so each sign-in is a new user agent that sees the consent page).
 */
export const ACCESS_TOKEN_TTL_SECONDS = 4;
/** Past the access token's `exp` and the gateway's clock-skew allowance: the next call gets 401 and must refresh. */
export const REFRESH_AFTER_MS = (ACCESS_TOKEN_TTL_SECONDS + ACCESS_TOKEN_CLOCK_SKEW_SECONDS + 1) * 1000;

export interface ForeignClientStage {
  demo: RunningDemo;
  cimd: CimdHost;
  /** Redirect URIs the CIMD document lists (add before the client authorizes). */
  cimdRedirectUris: string[];
  dir: string;
  /** Answers the consent page and the IdP's sign-in for `url`; resolves with the callback URL the browser reached. */
  authorize(url: URL): Promise<URL>;
  close(): Promise<void>;
}

export async function startForeignClientStage(name: string): Promise<ForeignClientStage> {
  const dir = await mkdtemp(join(tmpdir(), `gatehouse-e2e-${name}-`));
  const cimdRedirectUris: string[] = [];
  const cimd = await startCimdHost({
    caFile: join(dir, 'cimd-ca.pem'),
    document: (clientId) => ({
      client_id: clientId,
      client_name: `E2E ${name}`,
      redirect_uris: cimdRedirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  const demo = await startDemo({
    config: {
      authorization: { accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS, clientMetadataDocuments: { allowLoopback: false, trustedCaFile: cimd.caFile } },
    },
    assemble: cimd.assemble,
  });
  const browser: Browser = await launchBrowser();
  return {
    demo,
    cimd,
    cimdRedirectUris,
    dir,
    async authorize(url) {
      const redirectUri = url.searchParams.get('redirect_uri');
      assert.ok(redirectUri, `the authorization request names its redirect URI: ${url.href}`);
      const user = demo.users[0];
      assert.ok(user);
      const context = await browser.newContext();
      try {
        return (await signInWithBrowser({ context, authorizationUrl: url.href, user, redirectUri })).callbackUrl;
      } finally {
        await context.close();
      }
    },
    async close() {
      await browser.close();
      await demo.close();
      await cimd.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
