import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK } from 'jose';
import { startLocalIdentityProvider, type LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import type { UpstreamSettings } from '../targets/gatehouse.ts';

/**
 * The upstream identity provider of the bench's Gatehouse: the local IdP of the demo (an oidc-provider with a
 * sign-in form), in the bench's own process, where it only serves the few sign-ins that give the refresh run its
 * grants. Gatehouse authenticates to it with private_key_jwt, a key file in the temp dir, as a production
 * deployment without workload identity does.
 */
export const BENCH_USER = { id: 'bench-user-0001', username: 'bench', password: 'bench-password', name: 'Bench User', email: 'bench@gatehouse.test' };

export async function startBenchIdentityProvider(dir: string, gatehouseUrl: string): Promise<{ idp: LocalIdentityProvider; upstream: UpstreamSettings }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateKeyFile = join(dir, 'upstream-client-key.pem');
  await writeFile(privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const keyId = 'bench-gatehouse';
  const idp = await startLocalIdentityProvider({
    users: [BENCH_USER],
    gateway: {
      clientId: 'gatehouse',
      redirectUris: [`${gatehouseUrl}/callback`],
      jwks: [{ ...(await exportJWK(publicKey)), kid: keyId, alg: 'ES256', use: 'sig' }],
    },
    downstreamAudiences: [],
  });
  return { idp, upstream: { issuer: idp.issuer, scope: idp.gatewayScope, privateKeyFile, keyId } };
}
