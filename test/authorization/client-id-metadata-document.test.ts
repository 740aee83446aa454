import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { allowTestHost, startCimdServer, testResolve, type CimdServer } from './cimd-server.ts';
import {
  authorize,
  authorizeUrl,
  CLIENT_REDIRECT,
  exchangeCode,
  pkcePair,
  registerClient,
  tokenRequest,
  startAuthorizationServer,
  TestBrowser,
  type TestServer,
  authorizationParams,
} from './harness.ts';
import { startedForSuite } from '../support/suite-server.ts';

/** URL client ids (CIMD, MCP 2025-11-25+): the provider fetches the document through our SSRF guard. */
describe('client id metadata documents', () => {
  let cimd: CimdServer;
  let caDir: string;
  let caFile: string;

  const documentFor = (overrides: Record<string, unknown> = {}) => (clientId: string) => ({
    client_id: clientId,
    client_name: 'Metadata Document App',
    redirect_uris: [CLIENT_REDIRECT],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...overrides,
  });

  before(async () => {
    cimd = await startCimdServer();
    caDir = mkdtempSync(join(tmpdir(), 'gatehouse-cimd-'));
    caFile = join(caDir, 'ca.pem');
    writeFileSync(caFile, cimd.ca);
    cimd.documents.set('/client.json', documentFor());
    cimd.documents.set('/mismatch.json', documentFor({ client_id: 'https://someone-else.example.test/client.json' }));
    cimd.documents.set('/secret.json', documentFor({ token_endpoint_auth_method: 'client_secret_post' }));
    cimd.documents.set('/evil-redirect.json', documentFor({ redirect_uris: ['javascript:alert(1)'] }));
    cimd.documents.set('/no-response-types.json', documentFor({ response_types: [] }));
    cimd.documents.set('/no-grant-types.json', documentFor({ grant_types: [] }));
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const machine = { token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', kid: 'k' }] } };
    cimd.documents.set('/client-credentials.json', documentFor({ ...machine, grant_types: ['authorization_code', 'refresh_token', 'client_credentials'] }));
  });
  after(async () => {
    await cimd.close();
    rmSync(caDir, { recursive: true, force: true });
  });

  async function start(extra: Record<string, unknown> = {}): Promise<TestServer> {
    return startAuthorizationServer({
      authorization: { clientMetadataDocuments: { trustedCaFile: caFile, ...extra } },
      deps: { clientMetadataFetch: { allowAddress: allowTestHost, resolve: testResolve } },
    });
  }

  const params = (server: TestServer, clientId: string) => {
    const { challenge } = pkcePair();
    return authorizationParams(server, clientId, challenge);
  };

  describe('with no domain allow-list', () => {
    const server = startedForSuite(() => start());

    async function expectRefusedPage(clientId: string): Promise<string> {
      const response = await fetch(authorizeUrl(server, params(server, clientId)), { redirect: 'manual' });
      assert.equal(response.headers.get('location'), null, 'nothing is redirected for an unusable client');
      assert.equal(response.status, 400);
      return response.text();
    }

    it('authorizes a CIMD client end to end, shown as unverified with its URL', async () => {
      const clientId = cimd.url('/client.json');
      const browser = new TestBrowser();
      const { response } = await browser.follow(authorizeUrl(server, params(server, clientId)), server.publicUrl);
      const html = await response.text();
      assert.match(html, /Metadata Document App/);
      assert.ok(html.includes(`Client metadata: ${clientId}`));
      assert.match(html, /Unverified application/);

      const { verifier, challenge } = pkcePair();
      const outcome = await authorize(server, new TestBrowser(), { ...params(server, clientId), code_challenge: challenge });
      const code = outcome.url.searchParams.get('code');
      assert.ok(code, outcome.url.href);
      const tokens = await exchangeCode(server, { client_id: clientId, redirect_uris: [CLIENT_REDIRECT] }, code, verifier);
      assert.equal(tokens.status, 200);
    });

    it('refuses a document URL on 127.0.0.1', async () => {
      const before = cimd.requests;
      assert.match(await expectRefusedPage(`https://127.0.0.1:${cimd.port}/client.json`), /invalid_client/);
      assert.equal(cimd.requests, before, 'the guard refused before connecting');
    });

    it('refuses a document URL on the cloud metadata address', async () => {
      assert.match(await expectRefusedPage('https://169.254.169.254/latest/meta-data/client.json'), /invalid_client/);
      assert.match(await expectRefusedPage('https://metadata.test/client.json'), /invalid_client/);
    });

    it('refuses a redirect chain, even towards a public-looking URL', async () => {
      assert.match(await expectRefusedPage(cimd.url('/redirect')), /invalid_client/);
      assert.match(await expectRefusedPage(cimd.url('/redirect-internal')), /invalid_client/);
    });

    it('refuses a 10 MB document', async () => {
      assert.match(await expectRefusedPage(cimd.url('/huge')), /invalid_client/);
    });

    it('refuses a document whose client_id differs from its URL', async () => {
      assert.match(await expectRefusedPage(cimd.url('/mismatch.json')), /invalid_client/);
    });

    it('refuses shared-secret authentication and unsafe redirect URIs in a document', async () => {
      assert.match(await expectRefusedPage(cimd.url('/secret.json')), /invalid_client/);
      assert.match(await expectRefusedPage(cimd.url('/evil-redirect.json')), /invalid_client|invalid_redirect_uri/);
    });

    it('refuses a document that leaves its client without the code flow (empty response_types or grant_types)', async () => {
      // The provider repaired both: [] response types dropped `authorization_code` (a client that could never
      // authorize), [] grant types became `authorization_code` only (no refresh tokens, unlike leaving it out).
      for (const [document, member] of [['/no-response-types.json', 'response_types'], ['/no-grant-types.json', 'grant_types']] as const) {
        const page = await expectRefusedPage(cimd.url(document));
        assert.match(page, /invalid_client_metadata/, document);
        assert.ok(page.includes(`${member} must`), document);
      }
    });

    it('refuses a document asking for a grant beyond sign-in (client credentials: app-only tokens with no consent)', async () => {
      assert.match(await expectRefusedPage(cimd.url('/client-credentials.json')), /invalid_client/);
    });

    it('refuses a redirect URI the document does not list', async () => {
      const response = await fetch(
        authorizeUrl(server, { ...params(server, cimd.url('/client.json')), redirect_uri: 'https://attacker.example.test/cb' }),
        { redirect: 'manual' },
      );
      assert.equal(response.headers.get('location'), null);
      assert.match(await response.text(), /invalid_redirect_uri/);
    });

    it('fetches a failing document once per request (the provider looks the client up again), and logs why it failed', async () => {
      for (const [path, reason] of [
        ['/missing.json', /"status":404/],
        ['/redirect', /"reason":"redirect"/],
        ['/huge', /"host":"cimd\.test:\d+"/],
      ] as const) {
        const before = cimd.requests;
        const logged = server.logs.text().length;
        await expectRefusedPage(cimd.url(path));
        assert.equal(cimd.requests - before, 1, `${path}: one fetch`);
        const log = server.logs.text().slice(logged);
        assert.match(log, /client metadata fetch/, path);
        assert.match(log, reason, path);
      }
    });

    it("honours clientMetadataDocuments.timeoutMs beyond the provider's own 2.5 s", async () => {
      const response = await fetch(authorizeUrl(server, params(server, cimd.url('/slow/3000/client.json'))), { redirect: 'manual' });
      // The slow document's client_id is its own URL, so it is a valid client: the consent page follows.
      assert.notEqual(response.status, 400, await response.clone().text());
      await response.body?.cancel();
    });

    it("reads a registered client's jwks_uri up to the key-set limit, not the metadata document's", async () => {
      // One real key among padding keys: an ordinary key set with a few RSA keys or certificate chains is over 5 KB.
      const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
      const retired = await exportJWK((await generateKeyPair('RS256', { extractable: true })).publicKey);
      const padding = Array.from({ length: 20 }, (_, index) => ({ ...retired, kid: `retired-${index}` }));
      const current = { ...(await exportJWK(publicKey)), alg: 'ES256', kid: 'current' };
      cimd.documents.set('/keys.json', () => ({ keys: [current, ...padding] }));
      assert.ok(JSON.stringify({ keys: padding }).length > 5120, 'the key set is larger than a metadata document may be');
      const registered = await registerClient(server, {
        redirect_uris: [CLIENT_REDIRECT],
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'ES256',
        jwks_uri: cimd.url('/keys.json'),
      });
      assert.equal(registered.status, 201, await registered.clone().text());
      const { client_id: clientId } = (await registered.json()) as { client_id: string };
      const assertion = await new SignJWT({ jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', kid: 'current' })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(`${server.publicUrl}/token`)
        .setIssuedAt()
        .setExpirationTime('2m')
        .sign(privateKey);
      // Client authentication passes (the key set was read); the made-up code is what is refused.
      const response = await tokenRequest(server, {
        grant_type: 'authorization_code',
        code: 'no-such-code',
        code_verifier: pkcePair().verifier,
        redirect_uri: CLIENT_REDIRECT,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      });
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_grant');
    });

    it('never logs the fetched document or a stack trace to the client', async () => {
      const html = await expectRefusedPage(cimd.url('/mismatch.json'));
      assert.doesNotMatch(html, /at .*\.js:\d+/);
    });
  });

  describe('with domain allow and deny lists', () => {
    it('shows allow-listed domains as verified', async () => {
      const server = await start({ allowDomains: ['cimd.test'] });
      try {
        const { response } = await new TestBrowser().follow(authorizeUrl(server, params(server, cimd.url('/client.json'))), server.publicUrl);
        const html = await response.text();
        assert.match(html, /Verified/);
        assert.doesNotMatch(html, /Unverified application/);
      } finally {
        await server.close();
      }
    });

    it('refuses domains outside the allow-list and on the deny-list without fetching', async () => {
      const dotted = cimd.url('/client.json').replace('://cimd.test:', '://cimd.test.:');
      const cases = [
        { extra: { allowDomains: ['*.example.test'] }, clientId: cimd.url('/client.json') },
        { extra: { denyDomains: ['cimd.test'] }, clientId: cimd.url('/client.json') },
        // The same host spelled fully qualified (which resolvers and TLS accept) is the same host, denied too.
        { extra: { denyDomains: ['cimd.test'] }, clientId: dotted },
        { extra: { denyDomains: ['*.test'] }, clientId: dotted },
        { extra: {}, clientId: dotted },
      ];
      for (const { extra, clientId } of cases) {
        const server = await start(extra);
        try {
          const before = cimd.requests;
          const response = await fetch(authorizeUrl(server, params(server, clientId)), { redirect: 'manual' });
          assert.equal(response.status, 400);
          assert.equal(response.headers.get('location'), null);
          assert.equal(cimd.requests, before);
        } finally {
          await server.close();
        }
      }
    });
  });
});
