// Gatehouse's Entra app registration as infrastructure as code: the same result as `gatehouse entra setup`
// (redirect URI, exposed API scope, v2 access tokens, Graph delegated permissions, a federated credential).
// Needs the Microsoft Graph Bicep extension (bicepconfig.json: "extensions": { "microsoftGraphV1": "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:<version>" }).
extension microsoftGraphV1

@description('server.publicUrl of Gatehouse; the redirect URI is this + /callback.')
param publicUrl string
@description('Unique name of the registration in the tenant (Graph\'s uniqueName makes the deployment idempotent).')
param uniqueName string = 'gatehouse'
param displayName string = 'Gatehouse'
@description('Issuer of the federated credential: the tenant issuer for a managed identity, the AKS OIDC issuer URL, or https://token.actions.githubusercontent.com.')
param federatedIssuer string
@description('Subject: the managed identity\'s principal id, system:serviceaccount:<ns>:<sa>, or repo:<owner>/<repo>:environment:<env>.')
param federatedSubject string
@description('Stable id of the access_as_user scope (any GUID, kept across deployments).')
param apiScopeId string = '6f1c2f1e-3a1c-4b8e-9a57-2b1d9c0f4a11'
@description('Application ids of clients pre-authorized for the scope.')
param preAuthorizedClientIds array = []

var graphAppId = '00000003-0000-0000-c000-000000000000'
// Microsoft Graph delegated permission ids (the same in every tenant): openid, profile, email, offline_access, User.Read.
var graphScopes = [
  '37f7f235-527c-4136-accd-4a02d197296e'
  '14dad69e-099b-42c9-810b-d002981feec1'
  '64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0'
  '7427e0e9-2fba-42fe-b0c0-848c9e6a8182'
  'e1fe6dd8-ba31-4d61-89e7-88639da4683d'
]

resource app 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  web: { redirectUris: ['${publicUrl}/callback'] }
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [
      {
        id: apiScopeId
        value: 'access_as_user'
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Access Gatehouse as the signed-in user'
        adminConsentDescription: 'Lets MCP clients call tools through Gatehouse on behalf of the signed-in user.'
        userConsentDisplayName: 'Access Gatehouse as you'
        userConsentDescription: 'Lets MCP clients call tools through Gatehouse on your behalf.'
      }
    ]
    preAuthorizedApplications: [for clientId in preAuthorizedClientIds: { appId: clientId, delegatedPermissionIds: [apiScopeId] }]
  }
  requiredResourceAccess: [
    { resourceAppId: graphAppId, resourceAccess: [for id in graphScopes: { id: id, type: 'Scope' }] }
  ]
}

resource federated 'Microsoft.Graph/applications/federatedIdentityCredentials@v1.0' = {
  name: '${app.uniqueName}/gatehouse-federated'
  issuer: federatedIssuer
  subject: federatedSubject
  audiences: ['api://AzureADTokenExchange']
  description: 'Gatehouse authenticates without a secret.'
}

// identifierUris can name the appId only once it exists: a second resource declaration would conflict, so set
// api://<appId> with `az ad app update --id <appId> --identifier-uris api://<appId>` or run `gatehouse entra setup`.
resource sp 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: app.appId
}

output clientId string = app.appId
output adminConsentUrl string = 'https://login.microsoftonline.com/${tenant().tenantId}/adminconsent?client_id=${app.appId}'
