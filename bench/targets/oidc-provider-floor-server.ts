import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Adapter, type AdapterPayload } from 'oidc-provider';

/**
 * The oidc-provider floor (child process, an anchor of the bench's OAuth part): the library Gatehouse's
 * authorization server is built on, alone on `node:http` — no Fastify, no store (a Map), no hooks, rate limits,
 * logging or metrics — configured for what the bench measures on Gatehouse: open registration at `/register`, and
 * refresh-token grants with rotation whose access token is an ES256 JWT for a resource indicator. What Gatehouse's
 * OAuth endpoints cannot beat while oidc-provider serves them.
 *
 * Prints one JSON line, `{ origin, clientId, refreshTokens }`: one refresh token per chain (BENCH_CHAINS), each on
 * its own grant, minted through the provider's models (the floor has no sign-in to go through).
 */
const RESOURCE = 'https://resource.bench.test/mcp';
const REDIRECT = 'http://127.0.0.1:8976/callback';

/** The whole store: every model's payloads in one Map, with their expiry. Unbounded, unlike the library's own LRU. */
const records = new Map<string, { payload: AdapterPayload; expiresAt: number }>();
const byGrant = new Map<string, Set<string>>();

class MapAdapter implements Adapter {
  readonly #model: string;
  constructor(model: string) {
    this.#model = model;
  }
  #key(id: string): string {
    return `${this.#model}:${id}`;
  }
  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const key = this.#key(id);
    records.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.grantId) {
      const keys = byGrant.get(payload.grantId) ?? new Set<string>();
      keys.add(key);
      byGrant.set(payload.grantId, keys);
    }
  }
  async find(id: string): Promise<AdapterPayload | undefined> {
    const record = records.get(this.#key(id));
    if (!record || record.expiresAt <= Date.now()) return undefined;
    return record.payload;
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async findByUid(): Promise<undefined> {
    return undefined;
  }
  async consume(id: string): Promise<void> {
    const record = records.get(this.#key(id));
    if (record) record.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string): Promise<void> {
    records.delete(this.#key(id));
  }
  async revokeByGrantId(grantId: string): Promise<void> {
    for (const key of byGrant.get(grantId) ?? []) records.delete(key);
    byGrant.delete(grantId);
  }
}

// The library prints notices about the defaults the floor keeps on purpose (its own development store, default
// lifetimes) with console.info and console.warn; the bench reads this process's first stdout line.
console.info = () => {};
console.warn = () => {};

const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const server = createServer();
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const provider = new Provider(origin, {
  adapter: MapAdapter,
  jwks: { keys: [{ ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'floor' }] },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  routes: { registration: '/register', token: '/token' },
  scopes: ['openid', 'offline_access', 'mcp:tools'],
  findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
  rotateRefreshToken: () => true,
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: 'mcp:tools', audience: RESOURCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }),
    },
  },
});
server.on('request', provider.callback());
// A profiled run (`--cpu-prof`) writes its profile only on a normal exit.
process.on('SIGTERM', () => process.exit(0));

const registration = await fetch(`${origin}/register`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }),
});
if (registration.status !== 201) throw new Error(`the floor's registration failed: HTTP ${registration.status}`);
const { client_id: clientId } = (await registration.json()) as { client_id: string };
const client = await provider.Client.find(clientId);
if (!client) throw new Error('the registered client is not found');

// oidc-provider's types leave this model untyped.
type RefreshTokenConstructor = new (properties: Record<string, unknown>) => { save(): Promise<string> };
const RefreshToken = provider.RefreshToken as RefreshTokenConstructor;
const refreshTokens: string[] = [];
for (let i = 0; i < Number(process.env.BENCH_CHAINS ?? 8); i++) {
  const accountId = `bench-user-${i}`;
  const grant = new provider.Grant({ accountId, clientId });
  grant.addOIDCScope('openid offline_access');
  grant.addResourceScope(RESOURCE, 'mcp:tools');
  const grantId = await grant.save();
  const token = new RefreshToken({ client, accountId, grantId, scope: 'openid offline_access', resource: RESOURCE, gty: 'authorization_code' });
  refreshTokens.push(await token.save());
}
process.stdout.write(`${JSON.stringify({ origin, clientId, refreshTokens })}\n`);
