/**
 * The part of oidc-provider 9's API that Gatehouse uses. The package ships no type declarations; this file types
 * only what we call, so a misuse is a compile error and everything else stays visibly untyped (`unknown`).
 * Others that extend the provider (the broker's token-exchange grant) use these types too.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface AdapterPayload {
    [key: string]: unknown;
    accountId?: string;
    clientId?: string;
    grantId?: string;
    uid?: string;
    userCode?: string;
    /** Set by `consume()`; epoch seconds when the adapter stores a time, or `true`. */
    consumed?: unknown;
    exp?: number;
    iat?: number;
  }

  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined | void>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined | void>;
    findByUid(uid: string): Promise<AdapterPayload | undefined | void>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export type AdapterFactory = (name: string) => Adapter;
  export type AdapterConstructor = new (name: string) => Adapter;

  /** A Koa context with the provider's request state. */
  export interface KoaContextWithOIDC {
    oidc: OIDCContext;
    method: string;
    path: string;
    ip: string;
    status: number;
    body: unknown;
    get(header: string): string;
    set(header: string, value: string): void;
    remove(header: string): void;
    req: IncomingMessage;
    res: ServerResponse;
    [key: string]: unknown;
  }

  export interface OIDCContext {
    route: string;
    client?: Client;
    params?: Record<string, unknown>;
    entities: Record<string, unknown>;
    /** The names a client assertion's `aud` may give this server: the issuer, the token endpoint, the endpoint called. */
    clientJwtAuthExpectedAudience(): Set<string>;
    [key: string]: unknown;
  }

  export interface ClientMetadata {
    client_id: string;
    client_secret?: string;
    client_name?: string;
    redirect_uris?: string[];
    grant_types?: string[];
    response_types?: string[];
    token_endpoint_auth_method?: string;
    [key: string]: unknown;
  }

  export interface Client {
    clientId: string;
    clientName?: string;
    clientSecret?: string;
    clientAuthMethod: string;
    redirectUris: string[];
    logoUri?: string;
    clientUri?: string;
    applicationType?: string;
    grantTypes: string[];
    clientIdMetadataDocument?: boolean;
    grantTypeAllowed(type: string): boolean;
    redirectUriAllowed(value: string): boolean;
    compareClientSecret(actual: string): boolean | Promise<boolean>;
    metadata(): ClientMetadata;
    [key: string]: unknown;
  }

  export interface ClientStatic {
    find(id: string): Promise<Client | undefined>;
    prototype: Client;
  }

  export interface Grant {
    jti: string;
    accountId?: string;
    clientId?: string;
    addOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
    getOIDCScope(): string;
    getResourceScopeFiltered(resource: string, scopes: string[]): string;
    /** Stores the grant for its lifetime: the constructor's `expiresIn`, else `ttl.Grant` (an argument is ignored). */
    save(): Promise<string>;
    destroy(): Promise<void>;
  }

  export interface GrantStatic {
    /** `expiresIn` (seconds) overrides `ttl.Grant` for this grant. */
    new (properties: { accountId: string; clientId: string; expiresIn?: number }): Grant;
    find(id: string): Promise<Grant | undefined>;
  }

  /** A stored interaction; `find` answers undefined for an unknown or expired uid. */
  export interface InteractionStatic {
    find(uid: string): Promise<{ uid: string; exp: number; returnTo: string } | undefined>;
  }

  export interface InteractionDetails {
    uid: string;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    params: Record<string, unknown>;
    session?: { accountId: string; uid: string; cookie: string };
    grantId?: string;
    lastSubmission?: Record<string, unknown>;
    returnTo: string;
    exp: number;
  }

  export interface InteractionResult {
    login?: { accountId: string; remember?: boolean; amr?: string[]; acr?: string };
    consent?: { grantId?: string };
    error?: string;
    error_description?: string;
    [key: string]: unknown;
  }

  export interface Account {
    accountId: string;
    claims(use: string, scope: string): Record<string, unknown> | Promise<Record<string, unknown>>;
  }

  export type Configuration = Record<string, unknown>;

  export interface JWK {
    [key: string]: unknown;
  }

  export interface GrantSourceStatic {
    new (properties: Record<string, unknown>): { save(): Promise<string>; [key: string]: unknown };
    /** Undefined for an unknown, malformed or expired value. */
    find(value: string): Promise<{ resource?: string | string[] } | undefined>;
  }

  export default class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    proxy: boolean;
    readonly Client: ClientStatic;
    readonly Grant: GrantStatic;
    readonly Interaction: InteractionStatic;
    /** The stored codes and refresh tokens, found by their value (what a token request carries). */
    readonly AuthorizationCode: GrantSourceStatic;
    readonly RefreshToken: GrantSourceStatic;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResult,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    interactionResult(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResult,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<string>;
    registerGrantType(
      name: string,
      handler: (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>,
      params?: string | string[] | Set<string>,
      allowedDuplicateParameters?: string | string[] | Set<string>,
    ): void;
    use(middleware: (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>): void;
    on(event: string, listener: (...args: unknown[]) => void): this;
    emit(event: string, ...args: unknown[]): boolean;
    pathFor(name: string): string;
    /** The Koa context of the request being served (oidc-provider keeps it in an AsyncLocalStorage). */
    static readonly ctx: unknown;
    [key: string]: unknown;
  }

  export class OIDCProviderError extends Error {
    constructor(status: number, message: string);
    status: number;
    statusCode: number;
    error: string;
    error_description?: string;
    expose: boolean;
  }

  export const errors: {
    OIDCProviderError: typeof OIDCProviderError;
    InvalidClient: new (description?: string, detail?: string) => OIDCProviderError;
    /** 401 `invalid_client`, "client authentication failed"; the argument is the private detail (logged, never sent). */
    InvalidClientAuth: new (detail?: string) => OIDCProviderError;
    InvalidClientMetadata: new (description?: string, detail?: string) => OIDCProviderError;
    InvalidRedirectUri: new (description?: string, detail?: string) => OIDCProviderError;
    InvalidRequest: new (description?: string, status?: number, detail?: string) => OIDCProviderError;
    InvalidTarget: new (description?: string, detail?: string) => OIDCProviderError;
    InvalidGrant: new (description?: string, detail?: string) => OIDCProviderError;
    InvalidScope: new (description?: string, scope?: string, detail?: string) => OIDCProviderError;
    AccessDenied: new (description?: string, detail?: string) => OIDCProviderError;
    InvalidToken: new (detail?: string) => OIDCProviderError;
    UnsupportedTokenType: new (description?: string, detail?: string) => OIDCProviderError;
    [name: string]: unknown;
  };

  export interface InteractionCheck {
    reason: string;
  }

  export interface InteractionPrompt {
    name: string;
    checks: InteractionCheck[] & { add(check: InteractionCheck, index?: number): void };
  }

  export type InteractionPolicy = InteractionPrompt[] & { get(name: string): InteractionPrompt | undefined };

  export const interactionPolicy: {
    base(): InteractionPolicy;
    Prompt: unknown;
    /** `Check.REQUEST_PROMPT` (true) asks the user; `Check.NO_NEED_TO_PROMPT` (false) does not. */
    Check: new (reason: string, description: string, check: (ctx: KoaContextWithOIDC) => boolean | Promise<boolean>) => InteractionCheck;
  };
}

/**
 * oidc-provider's own sender-constraint steps of its built-in grants (the package has no `exports` map, so its
 * modules are importable by path). The grants Gatehouse registers (grants/dpop-binding.ts) run the same steps, so a
 * DPoP proof is checked and bound at /token exactly as for client_credentials. The version is pinned; the tests of
 * those grants fail if a release moves them.
 */
declare module 'oidc-provider/lib/helpers/validate_dpop.js' {
  import type Provider from 'oidc-provider';
  import type { KoaContextWithOIDC } from 'oidc-provider';

  /** The verified proof of the request's `DPoP` header, undefined without one; throws the provider's DPoP errors. */
  export default function validateDpop(provider: Provider, ctx: KoaContextWithOIDC): Promise<{ thumbprint: string; jti: string; iat: number } | undefined>;
  /** The request's proof once `validateDpop` has verified it (its JWT), else undefined. */
  export function getDpopJwt(provider: Provider, ctx: KoaContextWithOIDC): unknown;
  /** Records the proof's `jti` for the client (`ReplayDetection.unique`); throws when it was used before. */
  export function checkDpopReplay(provider: Provider, ctx: KoaContextWithOIDC, dPoP: { jti: string } | undefined, clientId: string): Promise<void>;
}

declare module 'oidc-provider/lib/helpers/challenge.js' {
  /** Seconds a DPoP proof's `iat` may be from now, either way, when it carries no nonce. */
  export const CHALLENGE_OK_WINDOW: number;
}

declare module 'oidc-provider/lib/helpers/sender_constraints.js' {
  import type Provider from 'oidc-provider';
  import type { KoaContextWithOIDC } from 'oidc-provider';

  /** Throws `invalid_grant` when the client is registered with `dpop_bound_access_tokens` and sent no proof. */
  export function checkDpopRequired(provider: Provider, ctx: KoaContextWithOIDC, dPoP: unknown): void;
}
