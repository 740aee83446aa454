/**
 * The OAuth URNs every part speaks, declared once: the authorization server accepts them, the upstream client and
 * the broker send them, the local identity provider answers them.
 */

/** RFC 7523 §2.1: a JWT as an authorization grant (Entra's on-behalf-of flow uses it with `requested_token_use`). */
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** RFC 8693 §2.1: token exchange. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** RFC 7523 §2.2: a JWT as client authentication (private_key_jwt, federated credentials). */
export const JWT_BEARER_CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** RFC 8693 §3: token type identifiers. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
/** OpenID Connect ID token as an RFC 8693 subject token. */
export const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
/**
 * Identity Assertion JWT Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant): its RFC 8693 token
 * type (§4.3), its JWT `typ` (§3.1) and the grant profile AS metadata advertises (§7.2), as the MCP
 * Enterprise-Managed Authorization extension uses them.
 */
export const ID_JAG_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id-jag';
export const ID_JAG_TYP = 'oauth-id-jag+jwt';
export const ID_JAG_GRANT_PROFILE = 'urn:ietf:params:oauth:grant-profile:id-jag';
