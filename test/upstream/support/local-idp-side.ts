import { startLocalIdentityProvider, type LocalIdentityProvider } from '../../../src/demo/local-idp/local-identity-provider.ts';
import { startWorkloadIdentityIssuer, type WorkloadIdentityIssuer } from '../../../src/demo/workload-identity/workload-identity-issuer.ts';
import { createGatewaySide, type GatewaySide } from './fixture.ts';

/** The demo directory API's audience (its URL in the demo), which the local IdP issues downstream tokens for. */
export const DIRECTORY_AUDIENCE = 'http://localhost:8083';

export interface LocalIdpSide {
  workload: WorkloadIdentityIssuer;
  idp: LocalIdentityProvider;
  gateway: GatewaySide;
  close(): Promise<void>;
}

/**
 * The local identity provider with the gateway registered as its client `gatehouse`, authenticated by a federated
 * client assertion from the local workload-identity issuer (no secret anywhere), and the gateway's real upstream
 * client pointed at it, with its redirect URI on `publicUrl`.
 */
export async function startLocalIdpSide(publicUrl: string): Promise<LocalIdpSide> {
  const workload = await startWorkloadIdentityIssuer();
  const idp = await startLocalIdentityProvider({
    gateway: { clientId: 'gatehouse', redirectUris: [`${publicUrl}/callback`], workloadIssuerUrl: workload.issuer },
    downstreamAudiences: [DIRECTORY_AUDIENCE],
  });
  const gateway = await createGatewaySide({
    publicUrl,
    upstream: {
      type: 'oidc',
      issuer: idp.issuer,
      clientId: 'gatehouse',
      clientAuth: { method: 'federated', issuerUrl: workload.issuer, audience: 'api://AzureADTokenExchange' },
      scopes: ['openid', 'profile', 'email', 'offline_access', idp.gatewayScope],
    },
  });
  return {
    workload,
    idp,
    gateway,
    async close() {
      await gateway.store.close();
      await idp.close();
      await workload.close();
    },
  };
}
