import { recordSignIn } from '../../src/authorization/account-record.ts';
import { AUDIT_NAMESPACE, type AuditRecord } from '../../src/proxy/audit.ts';
import type { Clock } from '../../src/runtime/clock.ts';
import { createOidcAdapter } from '../../src/store/oidc-adapter.ts';
import type { Store } from '../../src/store/store.ts';

/**
 * Seeds a store the way a running gateway fills it: accounts through recordSignIn, clients, grants and refresh
 * tokens through the real oidc-provider storage adapter, audit records in the proxy's key format.
 */
export const ALICE = { subject: 'tenant-1/alice', issuer: 'https://idp.test', name: 'Alice Admin', email: 'alice@example.com', groups: ['ops'] };
export const BOB = { subject: 'tenant-1/bob', issuer: 'https://idp.test', name: 'Bob User', email: 'bob@example.com', groups: [] };
export const DCR_CLIENT = 'dcr-client-1';
export const CIMD_CLIENT = 'https://cimd.example/client.json';
export const CONFIGURED_CLIENT = 'configured-app';
/** The default console harness's public URL + the demo route: its scope descriptions are the demo config's. */
export const RESOURCE = 'http://127.0.0.1:8080/mcp';

export const GRANTS = {
  aliceDcr: 'grant-alice-dcr',
  bobDcr: 'grant-bob-dcr',
  aliceCimd: 'grant-alice-cimd',
  bobConfigured: 'grant-bob-configured',
} as const;

export async function seedStore(store: Store, clock: Clock): Promise<void> {
  const Adapter = createOidcAdapter(store, clock);
  const now = Math.floor(clock.now() / 1000);
  await recordSignIn(store, clock, ALICE);
  await recordSignIn(store, clock, BOB);

  await new Adapter('Client').upsert(DCR_CLIENT, {
    client_id: DCR_CLIENT,
    client_name: 'Inspector <script>',
    client_id_issued_at: now - 3600,
    redirect_uris: ['http://127.0.0.1:6274/oauth/callback', 'https://app.example/cb'],
    token_endpoint_auth_method: 'none',
  });
  await new Adapter('RegistrationAccessToken').upsert('registration-token-secret', { clientId: DCR_CLIENT, kind: 'RegistrationAccessToken' });

  const grant = (accountId: string, clientId: string, scope: string) => ({
    kind: 'Grant',
    accountId,
    clientId,
    iat: now - 600,
    exp: now + 86_400,
    openid: { scope: 'openid' },
    resources: { [RESOURCE]: scope },
  });
  const grants = new Adapter('Grant');
  await grants.upsert(GRANTS.aliceDcr, { jti: GRANTS.aliceDcr, ...grant(ALICE.subject, DCR_CLIENT, 'mcp:tools graph:read') }, 86_400);
  await grants.upsert(GRANTS.bobDcr, { jti: GRANTS.bobDcr, ...grant(BOB.subject, DCR_CLIENT, 'mcp:tools') }, 86_400);
  await grants.upsert(GRANTS.aliceCimd, { jti: GRANTS.aliceCimd, ...grant(ALICE.subject, CIMD_CLIENT, 'mcp:tools') }, 86_400);
  await grants.upsert(GRANTS.bobConfigured, { jti: GRANTS.bobConfigured, ...grant(BOB.subject, CONFIGURED_CLIENT, 'mcp:tools') }, 86_400);

  const refresh = new Adapter('RefreshToken');
  await refresh.upsert('refresh-alice-dcr-1', { kind: 'RefreshToken', grantId: GRANTS.aliceDcr, accountId: ALICE.subject, clientId: DCR_CLIENT, iat: now - 300 }, 3600);
  await refresh.upsert('refresh-bob-dcr-1', { kind: 'RefreshToken', grantId: GRANTS.bobDcr, accountId: BOB.subject, clientId: DCR_CLIENT, iat: now - 120 }, 3600);
  await new Adapter('AuthorizationCode').upsert('code-bob-dcr', { kind: 'AuthorizationCode', grantId: GRANTS.bobDcr, iat: now }, 60);
}

export async function seedAudit(store: Store, records: AuditRecord[]): Promise<void> {
  let n = 0;
  for (const record of records) {
    n += 1;
    const indexes: Record<string, string> = { route: record.route };
    if (record.user) indexes.user = record.user;
    if (record.tool) indexes.tool = record.tool;
    await store.set(AUDIT_NAMESPACE, `${String(record.time).padStart(15, '0')}-seed${n}`, record, { indexes, ttlSeconds: 86_400 * 30 });
  }
}

export function auditRecord(overrides: Partial<AuditRecord> & { time: number }): AuditRecord {
  return {
    user: ALICE.subject,
    client: DCR_CLIENT,
    route: '/mcp',
    method: 'tools/call',
    tool: 'hello',
    outcome: 'allowed',
    status: 200,
    durationMs: 12,
    bytesIn: 100,
    bytesOut: 200,
    ...overrides,
  };
}
