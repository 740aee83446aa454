import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { claimMappingFor, wantsUserinfo } from '../../src/upstream/claim-mapping.ts';
import { identityFromClaims } from '../../src/upstream/identity-claims.ts';

const upstream = (input: Record<string, unknown>) =>
  configSchema.parse({ upstream: { clientId: 'gw', clientAuth: { method: 'client_secret_post', clientSecret: 'x' }, ...input } }).upstream!;

describe('upstream claim mapping', () => {
  it('generic preset: <issuer>#<sub>, groups from the groups claim, userinfo when a claim is missing', () => {
    const mapping = claimMappingFor(upstream({ issuer: 'https://idp.example.com' }));
    assert.deepEqual(mapping, { preset: 'generic', subject: 'sub', name: 'name', email: 'email', groups: ['groups'], userinfo: 'auto' });
    const identity = identityFromClaims({ iss: 'https://idp.example.com', sub: 'u1', name: 'U', email: 'u@x', email_verified: true, groups: ['a', 'a', 'b'] }, mapping);
    assert.deepEqual(identity, { subject: 'https://idp.example.com#u1', issuer: 'https://idp.example.com', groups: ['a', 'b'], name: 'U', email: 'u@x' });
    assert.equal(wantsUserinfo({ iss: 'i', sub: 'u1' }, mapping), true, 'a conformant ID token without scope claims');
    assert.equal(wantsUserinfo({ iss: 'i', sub: 'u1', name: 'U', email: 'u@x', email_verified: true, groups: [] }, mapping), false);
    assert.equal(wantsUserinfo({ iss: 'i', sub: 'u1', name: 'U', email: 'u@x', groups: [] }, mapping), true, 'email_verified may be said only at userinfo');
  });

  it('entra preset: <tid>/<oid>, groups and app roles, never userinfo', () => {
    const mapping = claimMappingFor(upstream({ type: 'entra', entra: { tenantId: 'contoso.example' } }));
    assert.equal(mapping.userinfo, 'never');
    assert.equal(wantsUserinfo({}, mapping), false);
    const identity = identityFromClaims({ iss: 'x', tid: 'T1', oid: 'o1', sub: 'per-app', preferred_username: 'a@contoso.example', roles: ['Admin'] }, mapping);
    assert.equal(identity.subject, 't1/o1');
    assert.equal(identity.email, 'a@contoso.example');
    assert.deepEqual(identity.groups, ['Admin']);
  });

  it('uses an `email` only when the provider vouches for it: email_verified (OIDC), xms_edov (Entra)', () => {
    // Many providers let a user type any address into their profile; admin.users and tool policies match addresses.
    const generic = claimMappingFor(upstream({ issuer: 'https://idp.example.com' }));
    const claims = { iss: 'https://idp.example.com', sub: 'mallory', email: 'admin@corp.example' };
    assert.equal(identityFromClaims(claims, generic).email, undefined);
    assert.equal(identityFromClaims({ ...claims, email_verified: false }, generic).email, undefined);
    assert.equal(identityFromClaims({ ...claims, email_verified: 'true' }, generic).email, 'admin@corp.example');
    const entra = claimMappingFor(upstream({ type: 'entra', entra: { tenantId: 'contoso.example' } }));
    const entraClaims = { iss: 'x', tid: 'T1', oid: 'o1', email: 'admin@corp.example', preferred_username: 'mallory@contoso.example' };
    assert.equal(identityFromClaims(entraClaims, entra).email, 'mallory@contoso.example', 'the sign-in name, not the editable email');
    assert.equal(identityFromClaims({ ...entraClaims, upn: 'mallory.upn@contoso.example' }, entra).email, 'mallory.upn@contoso.example', 'upn before preferred_username');
    assert.equal(identityFromClaims({ ...entraClaims, xms_edov: true }, entra).email, 'admin@corp.example');
    // A claim the operator mapped by another name is theirs to vouch for.
    const custom = claimMappingFor(upstream({ issuer: 'https://idp.example.com', claims: { email: 'mail' } }));
    assert.equal(identityFromClaims({ ...claims, mail: 'kim@corp.example' }, custom).email, 'kim@corp.example');
  });

  it('maps custom claims (Keycloak-style roles, a username as name)', () => {
    const mapping = claimMappingFor(
      upstream({ issuer: 'https://kc.example/realms/r', claims: { name: 'preferred_username', groups: ['roles', 'groups'], userinfo: 'always' } }),
    );
    const identity = identityFromClaims({ iss: 'https://kc.example/realms/r', sub: 's', preferred_username: 'kim', roles: 'r1 r2', groups: ['g'] }, mapping);
    assert.equal(identity.name, 'kim');
    assert.deepEqual(identity.groups, ['r1', 'r2', 'g']);
    assert.equal(wantsUserinfo({ name: 'x' }, mapping), true);
  });

  it('refuses a sign-in without the subject claim rather than inventing a subject', () => {
    const mapping = claimMappingFor(upstream({ issuer: 'https://idp.example.com', claims: { subject: 'employee_id' } }));
    assert.throws(() => identityFromClaims({ iss: 'https://idp.example.com', sub: 'u1' }, mapping), /"employee_id" claim/);
  });

  it("refuses a user id longer than OpenID Connect allows, cuts a name of kilobytes, and drops an address no address can be", () => {
    const mapping = claimMappingFor(upstream({ issuer: 'https://idp.example.com' }));
    assert.throws(() => identityFromClaims({ iss: 'https://idp.example.com', sub: 'x'.repeat(256) }, mapping), /longer than 255/);
    assert.equal(identityFromClaims({ iss: 'https://idp.example.com', sub: 'x'.repeat(255) }, mapping).subject, `https://idp.example.com#${'x'.repeat(255)}`);
    // 255 ASCII characters' worth: 127 emoji are 254 UTF-16 units but 508 bytes.
    assert.throws(() => identityFromClaims({ iss: 'https://idp.example.com', sub: '😀'.repeat(127) }, mapping), /longer than 255/);
    assert.throws(() => identityFromClaims({ iss: 'https://idp.example.com', sub: 'bob\r\nX-Injected: 1' }, mapping), /control characters/);
    assert.throws(() => identityFromClaims({ iss: 'https://idp.example.com', sub: 'bob\u0000' }, mapping), /control characters/);
    const identity = identityFromClaims({ iss: 'https://idp.example.com', sub: 'u1', name: 'n'.repeat(10_000), email: `${'e'.repeat(300)}@example.com`, email_verified: true }, mapping);
    assert.equal(identity.name?.length, 256);
    assert.ok(identity.name?.endsWith('…'));
    assert.equal(identity.email, undefined);
  });
});
