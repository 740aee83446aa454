import { TOKEN_EXCHANGE_AUDIENCE, type FederatedIdentityCredential } from './graph-types.ts';

/**
 * The secretless ways Gatehouse can authenticate to Entra, each as the federated identity credential Entra needs on the
 * app registration and the `upstream.clientAuth` Gatehouse needs in its config. The issuer/subject pairs are the ones
 * each platform puts in the token it mints (Entra matches them exactly, AADSTS70021 otherwise).
 */
export type Federation =
  | { kind: 'managed-identity'; clientId: string }
  | { kind: 'aks'; issuer: string; namespace: string; serviceAccount: string }
  | { kind: 'github'; repository: string; environment?: string; ref?: string };

export interface FederationPlan {
  credential: Omit<FederatedIdentityCredential, 'id'>;
  clientAuth: Record<string, unknown>;
  /** What the operator still has to do on the platform side. */
  note?: string;
}

/** `managedIdentityPrincipalId` is the managed identity's object id (its service principal's id), the token's subject. */
export function federationPlan(federation: Federation, tenantId: string, authority: string, managedIdentityPrincipalId?: string): FederationPlan {
  const audiences = [TOKEN_EXCHANGE_AUDIENCE];
  switch (federation.kind) {
    case 'managed-identity':
      if (!managedIdentityPrincipalId) throw new Error('the managed identity principal id is needed');
      return {
        credential: {
          name: 'gatehouse-managed-identity',
          issuer: `${authority.replace(/\/+$/, '')}/${tenantId}/v2.0`,
          subject: managedIdentityPrincipalId,
          audiences,
          description: 'Gatehouse authenticates with its managed identity (no secret).',
        },
        clientAuth: { method: 'federated', managedIdentityClientId: federation.clientId, audience: TOKEN_EXCHANGE_AUDIENCE },
      };
    case 'aks':
      return {
        credential: {
          name: `gatehouse-aks-${federation.namespace}-${federation.serviceAccount}`,
          issuer: federation.issuer,
          subject: `system:serviceaccount:${federation.namespace}:${federation.serviceAccount}`,
          audiences,
          description: 'Gatehouse on AKS with workload identity (no secret).',
        },
        // The workload identity webhook sets AZURE_FEDERATED_TOKEN_FILE, the default token file.
        clientAuth: { method: 'federated', audience: TOKEN_EXCHANGE_AUDIENCE },
        note: `label the pods azure.workload.identity/use: "true" and run them as service account ${federation.namespace}/${federation.serviceAccount} (the Helm chart does both)`,
      };
    case 'github': {
      const subject = federation.environment
        ? `repo:${federation.repository}:environment:${federation.environment}`
        : `repo:${federation.repository}:ref:${federation.ref ?? 'refs/heads/main'}`;
      return {
        credential: {
          name: `gatehouse-github-${federation.repository.replace(/[^A-Za-z0-9-]/g, '-')}`,
          issuer: 'https://token.actions.githubusercontent.com',
          subject,
          audiences,
          description: 'Gatehouse run from GitHub Actions (no secret).',
        },
        clientAuth: { method: 'federated', audience: TOKEN_EXCHANGE_AUDIENCE },
        note: `the workflow needs "permissions: id-token: write" and must write its OIDC token (audience ${TOKEN_EXCHANGE_AUDIENCE}) to the file named by AZURE_FEDERATED_TOKEN_FILE`,
      };
    }
  }
}

/** Fields Entra compares; a credential that differs in any of them is patched (its name cannot change). */
export function credentialDiffers(current: FederatedIdentityCredential, desired: FederationPlan['credential']): boolean {
  const sameAudiences = current.audiences.length === desired.audiences.length && desired.audiences.every((audience) => current.audiences.includes(audience));
  return current.issuer !== desired.issuer || current.subject !== desired.subject || !sameAudiences;
}
