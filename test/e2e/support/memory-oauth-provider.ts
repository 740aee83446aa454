/**
 * An MCP client's OAuth state kept in memory — what VS Code or Claude keep in their secret storage — shaped for both
 * SDK generations' `OAuthClientProvider` (they share the method names). `redirectToAuthorization` records the URL
 * instead of opening a browser; the test drives the browser itself.
 */
export interface MemoryOAuthState {
  clientInformation?: { client_id: string; client_secret?: string };
  tokens?: { access_token: string; token_type: string; refresh_token?: string; expires_in?: number; scope?: string };
  codeVerifier?: string;
  /** What discovery found, kept so the SDK can check the callback against the same authorization server. */
  discovery?: unknown;
  authorizationUrl?: URL;
  /** How many times the SDK sent the user to authorize. */
  redirects: number;
}

export interface MemoryOAuthProviderOptions {
  redirectUrl: string;
  clientName: string;
  /** CIMD: the URL of the client's metadata document, used as its client id (no registration). */
  clientMetadataUrl?: string;
  /** Scope the client asks for; by default the SDK takes it from the server's challenge. */
  scope?: string;
}

export function createMemoryOAuthProvider(options: MemoryOAuthProviderOptions) {
  const state: MemoryOAuthState = { redirects: 0 };
  const provider = {
    get redirectUrl() {
      return options.redirectUrl;
    },
    get clientMetadata() {
      return {
        client_name: options.clientName,
        redirect_uris: [options.redirectUrl],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        ...(options.scope ? { scope: options.scope } : {}),
      };
    },
    ...(options.clientMetadataUrl ? { clientMetadataUrl: options.clientMetadataUrl } : {}),
    clientInformation: () => state.clientInformation,
    saveClientInformation: (info: MemoryOAuthState['clientInformation']) => {
      state.clientInformation = info;
    },
    tokens: () => state.tokens,
    saveTokens: (tokens: MemoryOAuthState['tokens']) => {
      state.tokens = tokens;
    },
    redirectToAuthorization: (url: URL) => {
      state.authorizationUrl = url;
      state.redirects += 1;
    },
    saveCodeVerifier: (verifier: string) => {
      state.codeVerifier = verifier;
    },
    saveDiscoveryState: (discovery: unknown) => {
      state.discovery = discovery;
    },
    discoveryState: () => state.discovery as never,
    // What the SDKs call when the authorization server refuses a refresh (`invalid_grant`) before they re-authorize.
    invalidateCredentials: (scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery') => {
      if (scope === 'all' || scope === 'tokens') delete state.tokens;
      if (scope === 'all' || scope === 'client') delete state.clientInformation;
      if (scope === 'all' || scope === 'verifier') delete state.codeVerifier;
      if (scope === 'all' || scope === 'discovery') delete state.discovery;
    },
    codeVerifier: () => {
      if (!state.codeVerifier) throw new Error('no code verifier saved');
      return state.codeVerifier;
    },
  };
  return { provider, state };
}
