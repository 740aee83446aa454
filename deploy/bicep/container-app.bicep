// Gatehouse on Azure Container Apps with a user-assigned managed identity as its federated credential (no secret).
// Deploy entra-app.bicep (or run `gatehouse entra setup --federation managed-identity`) with this identity's
// principal id as the subject; see docs/deployment.md.
param location string = resourceGroup().location
param environmentId string
@description('Image built from the repository Dockerfile.')
param image string
@description('gatehouse.yaml content (its upstream section from `gatehouse entra setup`).')
@secure()
param configYaml string
@secure()
param redisUrl string
param minReplicas int = 2

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'gatehouse-identity'
  location: location
}

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: 'gatehouse'
  location: location
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identity.id}': {} } }
  properties: {
    environmentId: environmentId
    configuration: {
      ingress: { external: true, targetPort: 8080, transport: 'http' }
      secrets: [
        { name: 'redis-url', value: redisUrl }
        { name: 'gatehouse-yaml', value: configYaml }
      ]
    }
    template: {
      scale: { minReplicas: minReplicas, maxReplicas: 10 }
      containers: [
        {
          name: 'gatehouse'
          image: image
          args: ['start', '--config', '/etc/gatehouse/gatehouse.yaml']
          env: [
            { name: 'REDIS_URL', secretRef: 'redis-url' }
            // Gatehouse's clientAuth.managedIdentityClientId must be this value.
            { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
          ]
          resources: { cpu: json('0.5'), memory: '1Gi' }
          probes: [
            { type: 'Liveness', httpGet: { path: '/healthz', port: 8080 } }
            { type: 'Readiness', httpGet: { path: '/readyz', port: 8080 } }
          ]
          volumeMounts: [{ volumeName: 'config', mountPath: '/etc/gatehouse' }]
        }
      ]
      volumes: [{ name: 'config', storageType: 'Secret', secrets: [{ secretRef: 'gatehouse-yaml', path: 'gatehouse.yaml' }] }]
    }
  }
}

output managedIdentityClientId string = identity.properties.clientId
output managedIdentityPrincipalId string = identity.properties.principalId
output fqdn string = app.properties.configuration.ingress.fqdn
