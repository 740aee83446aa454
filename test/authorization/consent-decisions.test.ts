import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { decideClientIdUrl, hostMatches } from '../../src/authorization/client-metadata-policy.ts';
import { cookieSecurity } from '../../src/authorization/cookie-security.ts';
import { findCovering, findForTarget, isWithdrawn, remember, withdrawConsent, type RememberedDecision } from '../../src/authorization/remembered-decisions.ts';
import { consentWithdrawnRecord } from '../../src/records/consent.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { GatehouseContext } from '../../src/context/gatehouse-context.ts';
import { tokenLifetimes } from '../../src/authorization/token-policy.ts';

const target = { clientId: 'c1', redirectUri: 'http://127.0.0.1/cb', resource: 'https://gw.test/mcp', scopes: ['mcp:tools'] };
const decision = (overrides: Partial<RememberedDecision> = {}): RememberedDecision => ({ ...target, expiresAt: 2_000, ...overrides });

describe('remembered consent decisions', () => {
  it('covers a request for the same target and no more scopes', () => {
    assert.ok(findCovering([decision({ scopes: ['mcp:tools', 'mcp:read'] })], target, 1_000));
    assert.equal(findCovering([decision()], { ...target, scopes: ['mcp:tools', 'mcp:admin'] }, 1_000), undefined);
  });

  it('is bound to client id, redirect URI and resource, and expires', () => {
    assert.equal(findCovering([decision()], { ...target, clientId: 'c2' }, 1_000), undefined);
    assert.equal(findCovering([decision()], { ...target, redirectUri: 'http://127.0.0.1/other' }, 1_000), undefined);
    assert.equal(findCovering([decision()], { ...target, resource: 'https://gw.test/other' }, 1_000), undefined);
    assert.equal(findCovering([decision()], target, 2_000), undefined);
    assert.ok(findForTarget([decision({ scopes: [] })], target, 1_000));
  });

  it('replaces the decision for a target and stays bounded', () => {
    let list: RememberedDecision[] = [];
    for (let index = 0; index < 30; index += 1) list = remember(list, decision({ clientId: `c${index}` }), 1_000);
    assert.ok(list.length <= 12);
    list = remember(list, decision({ clientId: 'c29', scopes: ['x'] }), 1_000);
    assert.equal(list.filter((entry) => entry.clientId === 'c29').length, 1);
  });
});

describe('CIMD domain policy', () => {
  const config = configSchema.parse({}).authorization.clientMetadataDocuments;
  it('matches hosts and suffix patterns', () => {
    assert.ok(hostMatches('app.example.com', 'app.example.com'));
    assert.ok(hostMatches('a.example.com', '*.example.com'));
    assert.equal(hostMatches('example.com', '*.example.com'), false);
    assert.equal(hostMatches('evilexample.com', '*.example.com'), false);
  });
  it('allows unlisted domains as unverified when there is no allow-list, and lets deny win', () => {
    assert.deepEqual(decideClientIdUrl('https://app.test/c.json', config), { allowed: true, verified: false });
    assert.equal(decideClientIdUrl('https://app.test/c.json', { ...config, allowDomains: ['app.test'], denyDomains: ['app.test'] }).allowed, false);
    assert.deepEqual(decideClientIdUrl('https://app.test/c.json', { ...config, allowDomains: ['app.test'] }), { allowed: true, verified: true });
    assert.equal(decideClientIdUrl('https://other.test/c.json', { ...config, allowDomains: ['app.test'] }).allowed, false);
    assert.equal(decideClientIdUrl('https://app.test/c.json', { ...config, enabled: false }).allowed, false);
  });

  it('refuses a client id URL written otherwise than its standard form: a second identity of one document, or a disguised one', () => {
    for (const spelling of ['HTTPS://app.test/c.json', 'https://APP.test/c.json', 'https://app.test:443/c.json', 'https://app.test', 'https://app.test/a/\u202enosj.c', 'https://app.test/c json', 'https://app.test/./c.json']) {
      const decision = decideClientIdUrl(spelling, config);
      assert.equal(decision.allowed, false, spelling);
      assert.match(decision.reason ?? '', /standard form/, spelling);
    }
    assert.equal(decideClientIdUrl('https://app.test/a/%E2%80%AEnosj.c?x=1', config).allowed, true);
  });
});

describe('cookie security', () => {
  const context = (publicUrl: string, insecureCookies: boolean) => {
    const warnings: string[] = [];
    const config = configSchema.parse({ dev: { insecureCookies } });
    const ctx = { config, publicUrl, logger: { warn: (message: string) => warnings.push(message) } } as unknown as GatehouseContext;
    return { ctx, warnings };
  };
  it('is secure on https, and ignores dev.insecureCookies there with a warning', () => {
    const { ctx, warnings } = context('https://gw.example.test', true);
    assert.equal(cookieSecurity(ctx), true);
    assert.equal(warnings.length, 1);
  });
  it('relaxes only on http://localhost with dev.insecureCookies, loudly', () => {
    const { ctx, warnings } = context('http://localhost:8080', true);
    assert.equal(cookieSecurity(ctx), false);
    assert.match(warnings[0] ?? '', /INSECURE COOKIES/);
  });
  it('refuses an http public URL otherwise', () => {
    assert.throws(() => cookieSecurity(context('http://localhost:8080', false).ctx), /not https/);
    assert.throws(() => cookieSecurity(context('http://gw.example.test', true).ctx), /not https/);
  });
});

describe('refresh token lifetimes', () => {
  const authorization = configSchema.parse({}).authorization;
  it('uses the idle limit, never beyond the absolute limit of the chain', () => {
    const now = 1_000_000;
    const ttl = tokenLifetimes(authorization, () => now).RefreshToken;
    assert.equal(ttl({} as never, { iiat: now }), authorization.refreshTokenIdleSeconds);
    const nearEnd = now - authorization.refreshTokenAbsoluteSeconds + 3_600;
    assert.equal(ttl({} as never, { iiat: nearEnd }), 3_600);
    assert.equal(ttl({} as never, { iiat: now - authorization.refreshTokenAbsoluteSeconds - 10 }), 1);
  });
});

describe('consent withdrawal record', () => {
  it('reads an invalid withdrawal as a withdrawal: a remembered approval does not authorize the client silently', async () => {
    const clock = new ManualClock();
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      assert.equal(await isWithdrawn(store, 'user-1', 'c1', 1_000), false, 'no record: not withdrawn');
      await withdrawConsent(store, 'user-1', 'c1', 2_000, 30);
      assert.equal(await isWithdrawn(store, 'user-1', 'c1', 1_000), true);
      assert.equal(await isWithdrawn(store, 'user-1', 'c1', 3_000), false, 'approved again after the withdrawal');
      // A cut-off write, a hand edit, another program on the Redis prefix: the record is there, its value is not.
      await store.set(consentWithdrawnRecord.namespace, 'user-1 c1', { withdrawnAt: 'yesterday' });
      assert.equal(await isWithdrawn(store, 'user-1', 'c1', 3_000), true);
      assert.equal(await isWithdrawn(store, 'user-1', 'c2', 3_000), false, 'another client is not touched');
    } finally {
      await store.close();
    }
  });
});
