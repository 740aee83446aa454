import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DPOP_SIGNING_ALGS } from '../../src/protocol/dpop.ts';
import { CLIENT_REDIRECT, registerPublicClient, startAuthorizationServer } from './harness.ts';
import { startedForSuite } from '../support/suite-server.ts';
import { applyReload } from '../../src/app/reload-config.ts';

describe('authorization server metadata (RFC 8414)', () => {
  const server = startedForSuite(() => startAuthorizationServer());

  it('advertises what MCP clients check, with the issuer byte-identical to the public URL', async () => {
    const response = await fetch(`${server.publicUrl}/.well-known/oauth-authorization-server`);
    assert.equal(response.status, 200);
    const metadata = (await response.json()) as Record<string, unknown>;
    assert.equal(metadata.issuer, server.publicUrl);
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
    assert.equal(metadata.authorization_response_iss_parameter_supported, true);
    assert.equal(metadata.client_id_metadata_document_supported, true);
    assert.deepEqual(metadata.response_types_supported, ['code']);
    assert.equal(metadata.authorization_endpoint, `${server.publicUrl}/authorize`);
    assert.equal(metadata.token_endpoint, `${server.publicUrl}/token`);
    assert.equal(metadata.registration_endpoint, `${server.publicUrl}/register`);
    assert.equal(metadata.revocation_endpoint, `${server.publicUrl}/revoke`);
    assert.equal(metadata.introspection_endpoint, `${server.publicUrl}/introspect`);
    assert.equal(metadata.jwks_uri, `${server.publicUrl}/jwks`);
    assert.ok((metadata.grant_types_supported as string[]).includes('refresh_token'));
    assert.ok(!(metadata.grant_types_supported as string[]).includes('implicit'));
    assert.equal(metadata.userinfo_endpoint, undefined);
  });

  it('lists its scopes without offline_access, which no client needs for a refresh token and is still served when asked', async () => {
    // The MCP SDK's v2 client adds a listed offline_access to every authorization request with prompt=consent, and
    // was then shown the consent page every time, however often the user had approved it.
    for (const document of ['oauth-authorization-server', 'openid-configuration']) {
      const metadata = (await (await fetch(`${server.publicUrl}/.well-known/${document}`)).json()) as { scopes_supported: string[] };
      assert.ok(metadata.scopes_supported.includes('openid') && metadata.scopes_supported.includes('mcp:tools'), document);
      assert.ok(!metadata.scopes_supported.includes('offline_access'), document);
    }
    const client = await registerPublicClient(server, { scope: 'openid offline_access mcp:tools' });
    assert.ok(client.client_id, 'a client registering it is still taken');
  });

  it('stops listing a route scope a reload removed: the authorization endpoint no longer grants it', async () => {
    const reloaded = await startAuthorizationServer({
      routes: [{ path: '/mcp', backend: 'http://127.0.0.1:9/', scopes: { 'mcp:tools': 'Use the tools', 'extra:admin': 'Administer' } }],
    });
    try {
      const listed = async () => ((await (await fetch(`${reloaded.publicUrl}/.well-known/oauth-authorization-server`)).json()) as { scopes_supported: string[] }).scopes_supported;
      assert.ok((await listed()).includes('extra:admin'));
      const live = reloaded.ctx.config;
      const next = structuredClone(live);
      next.routes[0]!.scopes = { 'mcp:tools': 'Use the tools' };
      assert.deepEqual(applyReload({ live, prepare: (config) => config, knownScopes: new Set(['mcp:tools', 'extra:admin']) }, next).applied, ['routes[/mcp].scopes']);
      const after = await listed();
      assert.ok(after.includes('mcp:tools') && after.includes('openid'), after.join(' '));
      assert.ok(!after.includes('extra:admin'), after.join(' '));
    } finally {
      await reloaded.close();
    }
  });

  it('answers another method than it serves on the metadata and the JWKS with 405 naming them, not a 404', async () => {
    for (const [path, allow] of [
      ['/.well-known/oauth-authorization-server', 'GET, HEAD, OPTIONS'],
      ['/.well-known/openid-configuration', 'GET, HEAD, OPTIONS'],
      ['/jwks', 'GET, HEAD, OPTIONS'],
    ] as const) {
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const response = await fetch(`${server.publicUrl}${path}`, { method });
        assert.equal(response.status, 405, `${method} ${path}`);
        assert.equal(response.headers.get('allow'), allow);
        await response.arrayBuffer();
      }
      assert.equal((await fetch(`${server.publicUrl}${path}`, { method: 'HEAD' })).status, 200, `HEAD ${path}`);
    }
  });

  it('advertises exactly what it serves end to end: the DPoP algorithms the gateway accepts, no PAR endpoint', async () => {
    const metadata = (await (await fetch(`${server.publicUrl}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(metadata).filter((key) => key.startsWith('dpop')), ['dpop_signing_alg_values_supported']);
    assert.deepEqual(metadata.dpop_signing_alg_values_supported, [...DPOP_SIGNING_ALGS]);
    assert.equal(metadata.pushed_authorization_request_endpoint, undefined);
    assert.equal(metadata.require_pushed_authorization_requests, undefined);
  });

  it('serves OpenID discovery with the same issuer', async () => {
    const metadata = (await (await fetch(`${server.publicUrl}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    assert.equal(metadata.issuer, server.publicUrl);
  });

  it('publishes the keyring public keys only', async () => {
    const jwks = (await (await fetch(`${server.publicUrl}/jwks`)).json()) as { keys: Array<Record<string, unknown>> };
    const kid = server.ctx.keyring.currentSigningKey().kid;
    assert.ok(jwks.keys.some((key) => key.kid === kid));
    assert.ok(jwks.keys.every((key) => key.d === undefined), 'no private key material');
  });

  it('answers the preflight of every public document from any origin, with the headers MCP clients send', async () => {
    // MCP SDK clients send MCP-Protocol-Version on discovery; the browser preflights it wherever the document is.
    for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration', '/jwks']) {
      const preflight = await fetch(`${server.publicUrl}${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'GET', 'access-control-request-headers': 'mcp-protocol-version' },
      });
      assert.equal(preflight.status, 204, path);
      assert.ok(['*', 'http://localhost:6274'].includes(preflight.headers.get('access-control-allow-origin') ?? ''), path);
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /mcp-protocol-version/i, path);
      await preflight.body?.cancel();
      // Without an Origin it asks what the URL allows (RFC 9110 §9.3.7).
      const plain = await fetch(`${server.publicUrl}${path}`, { method: 'OPTIONS' });
      assert.equal(plain.status, 204, path);
      assert.equal(plain.headers.get('allow'), 'GET, HEAD, OPTIONS');
    }
  });

  it('lets browser clients read metadata and call the token endpoint cross-origin', async () => {
    const metadata = await fetch(`${server.publicUrl}/.well-known/oauth-authorization-server`, { headers: { origin: 'http://localhost:6274' } });
    assert.ok(['*', 'http://localhost:6274'].includes(metadata.headers.get('access-control-allow-origin') ?? ''));
    const client = await registerPublicClient(server);
    const origin = new URL(CLIENT_REDIRECT).origin;
    const token = await fetch(`${server.publicUrl}/token`, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'unknown', client_id: client.client_id }).toString(),
    });
    assert.equal(token.headers.get('access-control-allow-origin'), origin);
    const stranger = await fetch(`${server.publicUrl}/token`, {
      method: 'POST',
      headers: { origin: 'https://evil.example.test', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'unknown', client_id: client.client_id }).toString(),
    });
    assert.notEqual(stranger.headers.get('access-control-allow-origin'), 'https://evil.example.test');
  });
});

describe('metadata for an issuer with a path', () => {
  const server = startedForSuite(() => startAuthorizationServer({ basePath: '/gatehouse' }));

  it('is served at the path-inserted well-known URL (RFC 8414 §3.1) with endpoints under the path', async () => {
    const response = await fetch(`${server.listenUrl}/.well-known/oauth-authorization-server/gatehouse`);
    assert.equal(response.status, 200);
    const metadata = (await response.json()) as Record<string, unknown>;
    assert.equal(metadata.issuer, server.publicUrl);
    assert.equal(metadata.token_endpoint, `${server.publicUrl}/token`);
    const openid = (await (await fetch(`${server.publicUrl}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    assert.equal(openid.issuer, server.publicUrl);
  });
});
