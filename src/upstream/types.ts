/**
 * What the rest of Gatehouse needs from the upstream identity provider. src/upstream implements it with
 * openid-client for Entra ID and generic OIDC; the authorization server uses sign-in, the token broker uses the rest.
 */

/** Who signed in, as the upstream says. */
export interface UpstreamIdentity {
  /**
   * Stable user id inside Gatehouse: Entra `oid` qualified by tenant (`tid/oid`), or the OIDC `sub` qualified by
   * issuer for other providers, so two providers or tenants can never collide.
   */
  subject: string;
  issuer: string;
  name?: string;
  email?: string;
  tenantId?: string;
  groups: string[];
}

export interface UpstreamTokens {
  accessToken: string;
  refreshToken?: string;
  idToken?: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Epoch ms: when the IdP answered (a token's lifetime, for how early it is renewed). */
  obtainedAt?: number;
  scope?: string;
}

export interface BeginSignInResult {
  /** Where to send the browser. */
  authorizationUrl: string;
  /**
   * Opaque value for the upstream-state cookie; `complete` requires it back (binds state to this browser). The
   * `browserBinding` given to beginSignIn when it was a usable one, so every sign-in of one browser shares one cookie.
   */
  stateCookie: string;
}

/** A client's demand for a fresh login (`prompt=login`, or `max_age` in seconds, OIDC Core §3.1.2.1). */
export interface Reauthentication {
  prompt?: 'login';
  maxAge?: number;
}

export interface CompletedSignIn {
  /** The Gatehouse interaction (oidc-provider uid) this sign-in belongs to. */
  interactionId: string;
  identity: UpstreamIdentity;
  tokens: UpstreamTokens;
  /** The `claims` request this sign-in carried (a step-up), so the caller can tell whether it asked for one. */
  requestedClaims?: string;
  /** The fresh login this sign-in asked for (and the ID token showed), for a step-up round trip to ask for again. */
  reauthenticate?: Reauthentication;
}

export interface DownstreamTokenRequest {
  /** The user's upstream access token (the OBO assertion / RFC 8693 subject token). */
  subjectToken: string;
  audience: string;
  scopes: string[];
  grant: 'on-behalf-of' | 'token-exchange';
}

export interface UpstreamClient {
  /**
   * @see RFC 6749 §4.1.1, RFC 7636 — our own PKCE, state and nonce, bound to a single-use record and a cookie.
   * `claims`: OIDC Core §5.5 `claims` request, here the IdP's own claims challenge (Entra Conditional Access step-up).
   * `browserBinding`: the upstream-state cookie this browser already holds, if any: reused, so a second sign-in
   * started before the first one returns (an editor connecting two servers) does not orphan the first.
   */
  /**
   * `reauthenticate`: the client asked for a fresh login (`prompt=login`, or `max_age` in seconds, OIDC Core §3.1.2.1),
   * which the IdP must then do itself rather than sign the user in silently from its own session.
   */
  beginSignIn(input: {
    interactionId: string;
    loginHint?: string;
    claims?: string;
    browserBinding?: string | undefined;
    reauthenticate?: Reauthentication;
  }): Promise<BeginSignInResult>;
  /** Validates state (single use), the cookie binding, nonce and ID token; errors are ProtocolErrors. */
  completeSignIn(input: { callbackUrl: URL; stateCookie: string | undefined }): Promise<CompletedSignIn>;
  /** @see RFC 6749 §6 */
  refresh(refreshToken: string): Promise<UpstreamTokens>;
  /** Entra on-behalf-of (jwt-bearer) or RFC 8693 token exchange, authenticated like sign-in (secretless first). */
  exchangeForDownstream(request: DownstreamTokenRequest): Promise<UpstreamTokens>;
  /**
   * Where to send the browser to end its session at the IdP (OIDC RP-Initiated Logout 1.0 §2), or undefined when the
   * IdP publishes no `end_session_endpoint`. Optional so stand-ins without one need not implement it.
   */
  endSessionUrl?(input: { idTokenHint?: string; postLogoutRedirectUri: string }): Promise<string | undefined>;
  /** Discovery reachable (for /readyz and `gatehouse doctor`). */
  checkHealth(): Promise<void>;
}
