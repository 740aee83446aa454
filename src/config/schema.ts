import { z } from 'zod';
import { AA_CONTRAST, contrastRatio, HEX_COLOUR } from './colour-contrast.ts';
import { cspOrigin } from './csp-source.ts';

/**
 * The one configuration schema. `gatehouse.yaml`, `GATEHOUSE_*` environment overrides and the local demo defaults all
 * end up validated here; docs/configuration.md is checked against this file by test/config/docs.test.ts.
 *
 * Every field carries a `.describe()` text: it is the documentation a user reads, so it says what the setting is for.
 * Objects are strict so a typo is an error with the nearest valid key suggested, not a silently ignored setting.
 */

/**
 * Durations, each bounded where the value is used: a timer (Node's `setTimeout` and `AbortSignal.timeout` take at
 * most 2³¹−1 ms; beyond, a timeout threw on every upstream call and a shutdown grace became 1 ms) or a lifetime (ten
 * years is longer than any token, cookie or record should live, and keeps every TTL in the store's range).
 */
const TIMER_MAX_MS = 2_147_483_647;
const TEN_YEARS_SECONDS = 10 * 365 * 24 * 3600;
const milliseconds = (what: string, def: number) =>
  z.number().int().positive().max(TIMER_MAX_MS).default(def).describe(what);
const seconds = (what: string, def: number) =>
  z.number().int().positive().max(TEN_YEARS_SECONDS).default(def).describe(what);
const days = (what: string, def: number) => z.number().int().positive().max(3650).default(def).describe(what);

/**
 * An issuer or public URL names a server, never credentials: `https://user:password@idp` was accepted, and the
 * password printed in the start-up warning and the logs that quote the URL.
 */
function hasNoUserinfo(value: string): boolean {
  const url = URL.parse(value);
  return url === null || (url.username === '' && url.password === '');
}
const USERINFO_MESSAGE = 'a URL here names no user or password (`user:password@`)';

const port = (what: string, def: number) => z.number().int().min(0).max(65_535).default(def).describe(what);

const httpUrl = z
  .string()
  .refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), {
    message: 'must be an http(s) URL',
  });

/** A link shown on the pages: an https URL, or a path on this gateway (never `//host`, which leaves the origin). */
const pageLink = z
  .string()
  .max(2048)
  .refine((value) => (value.startsWith('/') && !value.startsWith('//') && !value.includes('\\')) || URL.parse(value)?.protocol === 'https:', {
    message: 'must be an https URL or a path on this gateway starting with /',
  });

const brandingSchema = z
  .object({
    organisationName: z.string().trim().min(1).max(80).optional().describe('Shown at the top of the consent, error and start pages, and in their titles.'),
    logoUrl: pageLink
      .refine((value) => value.startsWith('/') || cspOrigin(value) !== undefined, { message: "its origin cannot be named in the pages' CSP `img-src` (a host of letters, digits, - and dots)" })
      .optional()
      .describe('Logo next to the organisation name: an https URL (its origin is added to the pages\' `img-src`) or a path on this gateway.'),
    supportUrl: pageLink.optional().describe('"Need help?" link on the consent, error and start pages: an https URL or a path on this gateway.'),
    accentColour: z
      .string()
      .regex(HEX_COLOUR, 'must be a hex colour such as #2454d6')
      .refine((value) => contrastRatio(value, '#ffffff') >= AA_CONTRAST, { message: `must be dark enough to read on white (WCAG AA contrast ${AA_CONTRAST}:1): it fills the Approve button under white text and colours links` })
      .optional()
      .describe('Colour of buttons and links on those pages (`#rgb` or `#rrggbb`), set by a generated stylesheet (no inline style, so the CSP stays strict).'),
  })
  .strict();

const scopeMap = z
  .record(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'scope names are printable ASCII without spaces or quotes'), z.string())
  .describe('Scopes this route offers, each with the description shown on the consent page.');

export const toolPolicySchema = z
  .object({
    scopes: z.array(z.string()).default([]).describe('Scopes the caller must hold to call this tool.'),
    groups: z
      .array(z.string())
      .default([])
      .describe('Upstream groups or app roles the user must have (any one of them) to call this tool.'),
    allow: z
      .string()
      .optional()
      .describe(
        'A CEL expression that must be `true` for the call to go through, over `user` (sub, email, groups, tenant; all empty for an app-only caller), `client` (id, appOnly), `tool` (name, annotations — the approved ones, with `toolPinning`) and `args` (the call\'s arguments). Checked when the config loads. Replaces the route\'s `defaultToolPolicy.allow` for this tool. One that reads neither `args` nor `tool.annotations` and refuses a caller also keeps the tool out of that caller\'s `tools/list`.',
      ),
    denyReason: z.string().optional().describe('Shown to the client (and audited) when `allow` is false.'),
    appOnly: z
      .enum(['allow', 'deny'])
      .optional()
      .describe('Whether app-only callers (client credentials or a workload token: no signed-in user) may call this tool (default `allow`); `deny` hides it from them too.'),
  })
  .strict();

const defaultToolPolicySchema = z
  .object({
    allow: z.string().describe('A CEL expression, as `tools.<name>.allow`, for every tool without its own `allow`.'),
    denyReason: z.string().optional().describe('Shown to the client (and audited) when `allow` is false.'),
  })
  .strict();

export const routeSchema = z
  .object({
    path: z
      .string()
      .regex(/^\/[A-Za-z0-9._~\-/]*$/, 'must be an absolute path such as /mcp or /mcp/graph')
      .describe('Path on the gateway that clients use, e.g. `/mcp`. Its public URL is the OAuth resource identifier.'),
    type: z.enum(['mcp', 'http']).default('mcp').describe('`mcp` for an MCP server, `http` for a plain REST API: bodies stream both ways (a form body naming `access_token` is refused), and a `Location` or `Content-Location` under the backend URL is given back under the route.'),
    backend: httpUrl.describe('URL of the backend this route forwards to.'),
    transports: z
      .array(z.enum(['streamable-http', 'sse']))
      .default(['streamable-http', 'sse'])
      .describe('MCP transports accepted on this route (`sse` is the legacy HTTP+SSE transport).'),
    legacySsePath: z
      .string()
      .default('/sse')
      .describe('Backend path of the legacy SSE endpoint, relative to the backend URL origin.'),
    scopes: scopeMap.default({ 'mcp:tools': 'Use the tools of this MCP server' }),
    requiredScopes: z
      .array(z.string())
      .default(['mcp:tools'])
      .describe('Scopes every request to this route must carry.'),
    tools: z
      .record(z.string(), toolPolicySchema)
      .default({})
      .describe('Per-tool policies by tool name (a called name that folds alike — case, NFKC, outer spaces — falls under the same policy); tools not listed need only the route scopes.'),
    defaultToolPolicy: defaultToolPolicySchema.optional().describe('The argument-level policy of every tool without its own `allow`.'),
    deniedToolResponse: z
      .enum(['insufficient_scope', 'jsonrpc_error'])
      .default('insufficient_scope')
      .describe('How a denied `tools/call` is answered: HTTP 403 step-up challenge, or a JSON-RPC error.'),
    toolPinning: z
      .enum(['block', 'warn', 'off'])
      .default('off')
      .describe(
        'Pinned tool definitions, trust on first use: the first `tools/list` answer pins each tool (name, description, schemas, annotations); a changed or new tool then waits for `gatehouse tools approve`. Only that one answer: a backend that pages its list (`nextCursor`) has the tools of its later pages waiting as new. `block` hides it and refuses its calls (and calls of tools never listed); `warn` serves it and logs and audits it; `off` does neither.',
      ),
    dpop: z
      .enum(['optional', 'required'])
      .default('optional')
      .describe(
        'DPoP (RFC 9449) on this route. A DPoP-bound token is always checked with its proof; `optional` also accepts unbound Bearer tokens, `required` refuses them with a DPoP challenge.',
      ),
    dpopNonce: z
      .boolean()
      .default(false)
      .describe('Require a gateway-issued nonce in every DPoP proof (RFC 9449 §9): a proof made in advance is refused, the client retries with the nonce in `DPoP-Nonce`.'),
    identity: z
      .object({
        mode: z
          .enum(['assertion', 'obo'])
          .default('assertion')
          .describe('`assertion`: a gateway-signed identity JWT; `obo`: a downstream token from the broker.'),
        assertionTtlSeconds: seconds('Lifetime of the identity assertion sent to the backend.', 120),
        downstream: z
          .string()
          .optional()
          .describe('With `obo`: the name of the `broker.downstream` entry whose token is forwarded.'),
      })
      .strict()
      .default({ mode: 'assertion', assertionTtlSeconds: 120 }),
    downstream: z
      .array(z.string())
      .default([])
      .describe('Names of `broker.downstream` entries the backend of this route may obtain tokens for.'),
    bodyLimitBytes: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        "Largest request body this route accepts; at most `server.bodyLimitBytes`, which is the default. Set it to the backend's own limit: the gateway then answers an oversized body with 413 itself, where a backend that refuses a body by dropping the connection mid-upload leaves it only a 502 to give.",
      ),
    timeouts: z
      .object({
        connectMs: milliseconds('Time to connect to the backend.', 5_000),
        responseHeadersMs: z
          .number()
          .int()
          .positive()
          .max(TIMER_MAX_MS)
          .optional()
          .describe(
            "Time for the backend to send response headers (then 504). Default 300000 on `mcp` routes: a backend answering `tools/call` with JSON sends them only when the tool has finished, so this is the longest tool call such a backend can serve, and the default lies beyond what MCP clients wait themselves (60 s in the TypeScript SDK, 300 s in the Python SDK); a client that gives up first aborts the backend request with its own. Default 60000 on `http` routes, as a plain reverse proxy waits.",
          ),
        idleStreamMs: milliseconds('An SSE stream with no bytes for this long is closed.', 15 * 60_000),
        requestBodyMs: milliseconds('Time a client has to send a whole request body, MCP POST or plain HTTP route (slow-loris defence).', 30_000),
      })
      .strict()
      .default({ connectMs: 5_000, idleStreamMs: 15 * 60_000, requestBodyMs: 30_000 }),
    allowMcpBackendOverlap: z
      .boolean()
      .default(false)
      .describe(
        'Only for `type: http`: accept (with a warning at start) a backend URL that also reaches the backend of an `mcp` route — same origin, and this base path a prefix of that backend path. Refused otherwise: the MCP endpoints would be callable through this route without the MCP route\'s scopes, tool policies and `tools/list` filter. A legacy SSE message endpoint a backend announces below this route\'s backend URL is refused at run time (502 on that stream) unless this is set.',
      ),
    rateLimit: z
      .object({
        perUserPerMinute: z.number().int().positive().default(600).describe('Requests per user per minute, across all replicas.'),
        perClientPerMinute: z.number().int().positive().default(3_000).describe('Requests per client per minute, across all replicas.'),
        streamsPerUser: z
          .number()
          .int()
          .positive()
          .default(100)
          .describe('Streams (Streamable HTTP GET, a 2026-07-28 `subscriptions/listen`, legacy `/sse`) one user may hold open on this route on one replica; one beyond is 429.'),
        sessionsPerUser: z
          .number()
          .int()
          .positive()
          .default(100)
          .describe(
            'Streamable HTTP sessions (`Mcp-Session-Id`, protocol 2025-11-25 and earlier) one user keeps on this route, whatever clients open them, across replicas. A session opened beyond it ends the opening client\'s oldest (the backend is sent its `DELETE`), or, when that client has no other, the user\'s oldest of another client (refused from then on: 404, and its client starts a new one). Most clients never end their sessions, and each one holds the backend\'s memory until it does.',
          ),
      })
      .strict()
      .default({ perUserPerMinute: 600, perClientPerMinute: 3_000, streamsPerUser: 100, sessionsPerUser: 100 }),
  })
  .strict();

export const downstreamSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lowercase letters, digits and dashes').describe('Name routes refer to.'),
    audience: z.string().describe('Resource (audience) of the downstream API, e.g. `https://graph.microsoft.com`.'),
    scopes: z.array(z.string()).min(1).describe('Delegated scopes requested, e.g. `https://graph.microsoft.com/User.Read`.'),
    grant: z
      .enum(['on-behalf-of', 'token-exchange'])
      .default('on-behalf-of')
      .describe('`on-behalf-of` (Entra jwt-bearer) or RFC 8693 `token-exchange`.'),
  })
  .strict();

const clientAuthSchema = z
  .discriminatedUnion('method', [
    z
      .object({
        method: z.literal('federated'),
        tokenFile: z
          .string()
          .optional()
          .describe('Projected service-account token file (defaults to `AZURE_FEDERATED_TOKEN_FILE`).'),
        managedIdentityClientId: z
          .string()
          .optional()
          .describe('Use the platform managed identity (this client id) to obtain the assertion instead of a file.'),
        audience: z.string().default('api://AzureADTokenExchange').describe('Audience of the federated assertion.'),
        issuerUrl: z
          .string()
          .optional()
          .describe('Local demo only: a workload-identity issuer that mints the assertion.'),
      })
      .strict(),
    z
      .object({
        method: z.literal('private_key_jwt'),
        privateKeyFile: z.string().describe('PEM private key (PKCS#8) used to sign client assertions.'),
        certificateFile: z
          .string()
          .optional()
          .describe('PEM certificate of that key; its SHA-256 thumbprint becomes `x5t#S256` (Entra certificates).'),
        keyId: z.string().optional().describe('`kid` header value, if the IdP needs one.'),
      })
      .strict(),
    z
      .object({
        method: z.enum(['client_secret_post', 'client_secret_basic']),
        clientSecret: z.string().min(1).describe('The client secret; use `${ENV_VAR}` rather than a literal.'),
      })
      .strict(),
  ])
  .describe('How Gatehouse authenticates to the upstream IdP; secretless methods first.');

export const upstreamSchema = z
  .object({
    type: z.enum(['entra', 'oidc']).default('oidc').describe('`entra` for Microsoft Entra ID, `oidc` for any other.'),
    issuer: z
      .string()
      .refine((value) => !/[?#]/.test(value), { message: 'an issuer has no query or fragment (`?`, `#`): subjects are `<issuer>#<sub>`' })
      .refine(hasNoUserinfo, { message: USERINFO_MESSAGE })
      .optional()
      .describe('OIDC issuer URL (generic profile). For Entra this is derived from `entra.tenantId`.'),
    entra: z
      .object({
        tenantId: z.string().describe('Tenant id, or `organizations`/`common` for multi-tenant apps.'),
        authority: z
          .string()
          .default('https://login.microsoftonline.com')
          .describe('Authority host; set it for sovereign clouds (e.g. `https://login.microsoftonline.us`).'),
        allowedTenants: z
          .array(z.string())
          .default([])
          .describe(
            "Multi-tenant apps (`tenantId: organizations` or `common`, required there): the tenant ids (GUIDs) whose users may sign in; `['*']` admits users of every Entra tenant. Ignored with a single `tenantId`.",
          ),
      })
      .strict()
      .optional(),
    clientId: z.string().min(1).describe('Application (client) id of Gatehouse at the upstream IdP.'),
    clientAuth: clientAuthSchema,
    scopes: z
      .array(z.string())
      .default(['openid', 'profile', 'email', 'offline_access'])
      .describe('Scopes requested at sign-in. For Entra add `api://<app-id>/.default` or a named API scope.'),
    groupsClaim: z
      .string()
      .default('groups')
      .describe('Claim holding the user\'s groups or roles (shorthand for `claims.groups: [<this>]`; Entra also reads `roles`).'),
    claims: z
      .object({
        preset: z
          .enum(['entra', 'generic'])
          .optional()
          .describe(
            'Where the identity comes from. `entra`: subject `<tid>/<oid>`, groups from `groups` and `roles`, no userinfo call. `generic`: subject `<issuer>#<sub>`, userinfo when the ID token lacks a claim. Default: `entra` for `type: entra`, else `generic`.',
          ),
        subject: z
          .string()
          .optional()
          .describe('Claim that identifies the user (default `oid` for entra, `sub` for generic); the subject is `<tid>/<value>` or `<issuer>#<value>`.'),
        name: z.string().optional().describe('Claim with the display name (default `name`).'),
        email: z
          .string()
          .optional()
          .describe(
            'Claim with the email address (default `email`, used only when the provider vouches for it: `email_verified`, or `xms_edov` for entra, which otherwise uses `upn`/`preferred_username`; a claim named here is trusted as it is).',
          ),
        groups: z
          .array(z.string())
          .optional()
          .describe('Claims whose values are the user\'s groups or roles, merged (default: `[<groupsClaim>]`, plus `roles` for entra).'),
        userinfo: z
          .enum(['auto', 'always', 'never'])
          .optional()
          .describe(
            'Call the IdP\'s userinfo endpoint: `auto` when the ID token lacks a mapped claim (OIDC providers put scope claims there), `always`, or `never` (default: `never` for entra, whose sign-in token is not for userinfo; else `auto`).',
          ),
      })
      .strict()
      .default({})
      .describe('Which upstream claims make the Gatehouse identity (subject, name, email, groups) that admin.users, admin.groups and tool policies match.'),
    timeoutMs: milliseconds('Timeout for calls to the upstream IdP.', 10_000),
  })
  .strict();

export const preRegisteredClientSchema = z
  .object({
    clientId: z.string().min(1).describe('Client id.'),
    clientSecret: z.string().min(16).optional().describe('Secret for confidential clients (stored hashed); they authenticate with `client_secret_basic`.'),
    jwks: z
      .object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) })
      .optional()
      .describe('Public keys (a JWK Set) of a confidential client that authenticates with `private_key_jwt` (RFC 7523 §2.2) instead of a secret.'),
    name: z.string().optional().describe('Display name.'),
    redirectUris: z.array(z.string()).default([]).describe('Exact redirect URIs.'),
    grantTypes: z
      .array(z.string())
      .default(['authorization_code', 'refresh_token'])
      .describe('Grant types the client may use (a backend calling the broker uses token-exchange).'),
    allowedDownstream: z
      .array(z.string())
      .default([])
      .describe('Names of `broker.downstream` entries this client may obtain through token exchange.'),
  })
  .strict()
  .refine((client) => client.clientSecret === undefined || client.jwks === undefined, {
    message: 'a client authenticates either with `clientSecret` or with `jwks` (private_key_jwt), not both',
  })
  .refine((client) => !client.grantTypes.includes('client_credentials') || client.clientSecret !== undefined || client.jwks !== undefined, {
    message: 'the `client_credentials` grant needs a confidential client: set `jwks` (private_key_jwt) or `clientSecret`',
  });

/** TLS for every key or assertion source (ID-JAG profile §7.3), except on a loopback host (tests, the local demo). */
const trustedKeySourceUrl = httpUrl.refine(
  (value) => new URL(value).protocol === 'https:' || ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(value).hostname),
  { message: 'must be https (http only on a loopback host)' },
);

/**
 * An issuer identifier (RFC 8414 §2, OpenID Connect Discovery §3): https, no query, no fragment. Subjects of
 * federated users are `<issuer>#<sub>`, so an issuer with a `#` could make one IdP's user collide with another's.
 */
const issuerUrl = trustedKeySourceUrl
  .refine((value) => !/[?#]/.test(value), { message: 'an issuer has no query or fragment (`?`, `#`)' })
  .refine(hasNoUserinfo, { message: USERINFO_MESSAGE });

export const enterpriseIdpSchema = z
  .object({
    issuer: issuerUrl.describe('The IdP\'s issuer: the `iss` of its ID-JAGs, compared exactly.'),
    jwksUri: trustedKeySourceUrl
      .optional()
      .describe('Its signing keys (JWKS); if unset, the `jwks_uri` of its discovery document (OpenID Connect Discovery, then RFC 8414).'),
    clients: z
      .array(z.string().min(1))
      .min(1)
      .describe('Client ids that may present this IdP\'s ID-JAGs: the assertion\'s `client_id` must be the authenticated client and one of these. Each must be in `clients`, confidential (`clientSecret` or `jwks`), with the jwt-bearer grant.'),
    scopes: z
      .array(z.string())
      .optional()
      .describe('The most a token from this IdP may carry (a cap on top of the assertion\'s and the request\'s scopes); unset: any scope of the route.'),
  })
  .strict();

export const workloadRuleSchema = z
  .object({
    subject: z.string().min(1).optional().describe('Pattern the token\'s `sub` must match (`*` stands for any characters), e.g. `repo:acme/deploy:ref:refs/heads/main` or `system:serviceaccount:agents:*`.'),
    claims: z
      .record(z.string().min(1), z.string())
      .default({})
      .describe('Other claims that must match, each a pattern like `subject`; a nested claim is named by its path with `/`, e.g. `kubernetes.io/namespace`. Examples: `repository`, `environment`, `tid`, `oid`.'),
    clientId: z.string().min(1).describe('The pre-registered client the workload acts as: `grantTypes` with the jwt-bearer grant, no secret or keys (the workload token is the credential).'),
    scopes: z.array(z.string()).min(1).describe('The most its tokens may carry (within the route\'s scopes).'),
  })
  .strict();

export const workloadIdentitySchema = z
  .object({
    issuer: issuerUrl.describe('The workload platform\'s issuer (`iss`), compared exactly: a Kubernetes cluster, `https://token.actions.githubusercontent.com`, an Entra tenant (`https://login.microsoftonline.com/<tenant>/v2.0`).'),
    jwksUri: trustedKeySourceUrl.optional().describe('Its signing keys (JWKS); if unset, the `jwks_uri` of its discovery document.'),
    audience: z.string().optional().describe('The `aud` its tokens for Gatehouse carry; default Gatehouse\'s token endpoint URL (as the MCP extension says).'),
    rules: z
      .array(workloadRuleSchema)
      .min(1)
      .describe('Which workloads get tokens: the first rule whose `subject` and `claims` all match decides the client and scopes; no match is `invalid_grant`.'),
  })
  .strict();

export const configSchema = z
  .object({
    mode: z
      .enum(['demo', 'production'])
      .default('production')
      .describe('`demo` starts the local identity provider, sample server and directory API; never in production.'),
    server: z
      .object({
        host: z.string().default('127.0.0.1').describe('Interface to listen on.'),
        port: z.number().int().min(0).max(65_535).default(8080).describe('Port to listen on.'),
        publicUrl: httpUrl
          .refine(hasNoUserinfo, { message: USERINFO_MESSAGE })
          .optional()
          .describe('URL clients use to reach Gatehouse (the OAuth issuer). Required in production; must be https.'),
        trustProxy: z
          .union([z.boolean(), z.number().int().nonnegative(), z.array(z.string())])
          .default(false)
          .describe('Trust `X-Forwarded-*` from: `true` (any), a hop count, or a list of proxy addresses/CIDRs.'),
        bodyLimitBytes: z.number().int().positive().default(4 * 1024 * 1024).describe('Largest request body accepted.'),
        shutdownGraceMs: milliseconds('On SIGTERM, how long in-flight requests and streams may finish.', 10_000),
        allowedOrigins: z
          .array(z.string())
          .default([])
          .describe('Browser origins allowed to call MCP routes (requests without `Origin` are always allowed).'),
      })
      .strict()
      .default({
        host: '127.0.0.1',
        port: 8080,
        trustProxy: false,
        bodyLimitBytes: 4 * 1024 * 1024,
        shutdownGraceMs: 10_000,
        allowedOrigins: [],
      })
      .describe('Where Gatehouse listens and the public URL it advertises.'),
    store: z
      .object({
        type: z.enum(['sqlite', 'redis']).default('sqlite').describe('`sqlite` for one node, `redis` for replicas.'),
        sqlitePath: z.string().default('./.gatehouse/gatehouse.db').describe('SQLite database file.'),
        redisUrl: z
          .string()
          .optional()
          .describe('`redis://` or `rediss://` (TLS) URL, with password if needed; use `${REDIS_URL}`.'),
        keyPrefix: z.string().default('gatehouse:').describe('Prefix for every Redis key.'),
        purgeIntervalMs: milliseconds('How often expired SQLite rows are purged.', 60_000),
      })
      .strict()
      .default({ type: 'sqlite', sqlitePath: './.gatehouse/gatehouse.db', keyPrefix: 'gatehouse:', purgeIntervalMs: 60_000 })
      .describe('Where grants, sessions, keys and caches are kept.'),
    keys: z
      .object({
        source: z
          .enum(['store', 'file'])
          .default('store')
          .describe('`store`: keys generated and kept in the store; `file`: a JSON key set you provide.'),
        file: z.string().optional().describe('With `source: file`: path to the key set written by `gatehouse init`.'),
        signingAlgorithm: z.enum(['ES256', 'EdDSA']).default('ES256').describe('Algorithm of new signing keys.'),
      })
      .strict()
      .default({ source: 'store', signingAlgorithm: 'ES256' })
      .describe('Signing keys (published as a JWKS) and sealing keys for upstream tokens at rest.'),
    authorization: z
      .object({
        accessTokenTtlSeconds: seconds('Lifetime of access tokens.', 600),
        authorizationCodeTtlSeconds: seconds('Lifetime of authorization codes.', 60),
        refreshTokenIdleSeconds: seconds('A refresh token unused this long expires.', 14 * 24 * 3600),
        refreshTokenAbsoluteSeconds: seconds('No refresh token lives longer than this after sign-in.', 90 * 24 * 3600),
        refreshReuseGraceSeconds: z
          .number()
          .int()
          .nonnegative()
          .default(10)
          .describe('A rotated refresh token may be retried this long without revoking the grant.'),
        revocationMaxStalenessSeconds: z
          .number()
          .int()
          .nonnegative()
          // The list is re-read every 5 s (src/grants/revoked-grants.ts): a bound under two periods counts a healthy
          // replica stale before each re-read, and one failed re-read refuses every request and cuts every stream.
          .refine((seconds) => seconds === 0 || seconds >= 10, { message: 'must be 0 (no bound) or at least 10 (two re-reads of the list, 5 s apart)' })
          .default(120)
          .describe(
            'A replica that has not re-read the revoked grants from the store this long (the store unreachable) answers bearer requests 503 instead of trusting a list that may miss a revocation, and cuts the SSE streams it holds open; 0 keeps serving on the list it has. At least 10 otherwise (the list is re-read every 5 s).',
          ),
        dynamicRegistration: z
          .object({
            enabled: z.boolean().default(true).describe('Accept RFC 7591 registration (deprecated by MCP 2026-07-28).'),
            initialAccessToken: z
              .string()
              .optional()
              .describe('If set, registration requires this bearer token (closed deployments).'),
            perIpPerHour: z.number().int().positive().default(30).describe('Registrations per client IP per hour (an IPv6 client counted by its /64).'),
            perLoopbackIpPerHour: z
              .number()
              .int()
              .positive()
              .optional()
              .describe('Registrations per hour from a loopback address (a developer reconnecting clients); `perIpPerHour` if unset. The demo sets 1000.'),
          })
          .strict()
          .default({ enabled: true, perIpPerHour: 30 }),
        clientMetadataDocuments: z
          .object({
            enabled: z.boolean().default(true).describe('Accept URL client ids (CIMD).'),
            allowDomains: z
              .array(z.string())
              .default([])
              .describe('If non-empty, only these hosts (or `*.suffix`) may be CIMD clients; they show as verified.'),
            denyDomains: z.array(z.string()).default([]).describe('Hosts never accepted as CIMD clients.'),
            maxBytes: z.number().int().positive().default(5_120).describe('Largest metadata document accepted.'),
            // A fetch an anonymous /authorize request makes: it holds the request, so a few seconds, not minutes.
            timeoutMs: z.number().int().positive().max(30_000).default(5_000).describe('Time limit for fetching a metadata document (at most 30 s).'),
            cacheSeconds: seconds('Longest a fetched document is cached (HTTP caching may shorten it).', 3_600),
            allowLoopback: z
              .boolean()
              .default(false)
              .describe('Development only: allow documents on loopback addresses.'),
            trustedCaFile: z
              .string()
              .optional()
              .describe('Extra CA certificate (PEM) trusted when fetching documents (tests, private PKI).'),
          })
          .strict()
          .default({ enabled: true, allowDomains: [], denyDomains: [], maxBytes: 5_120, timeoutMs: 5_000, cacheSeconds: 3_600, allowLoopback: false }),
        clients: z.array(preRegisteredClientSchema).default([]).describe('Pre-registered clients.'),
        enterpriseIdps: z
          .array(enterpriseIdpSchema)
          .default([])
          .describe('Enterprise IdPs whose Identity Assertion JWT Authorization Grants (ID-JAG, MCP Enterprise-Managed Authorization) the token endpoint accepts.'),
        workloadIdentities: z
          .array(workloadIdentitySchema)
          .default([])
          .describe('Workload identity federation: issuers whose workload tokens (Kubernetes service accounts, GitHub Actions OIDC, Entra managed identities) the token endpoint accepts with the jwt-bearer grant, for app-only tokens.'),
        consentRememberDays: days('How long a browser remembers an approval.', 30),
      })
      .strict()
      .default({
        accessTokenTtlSeconds: 600,
        authorizationCodeTtlSeconds: 60,
        refreshTokenIdleSeconds: 14 * 24 * 3600,
        refreshTokenAbsoluteSeconds: 90 * 24 * 3600,
        refreshReuseGraceSeconds: 10,
        revocationMaxStalenessSeconds: 120,
        dynamicRegistration: { enabled: true, perIpPerHour: 30 },
        clientMetadataDocuments: { enabled: true, allowDomains: [], denyDomains: [], maxBytes: 5_120, timeoutMs: 5_000, cacheSeconds: 3_600, allowLoopback: false },
        clients: [],
        enterpriseIdps: [],
        workloadIdentities: [],
        consentRememberDays: 30,
      })
      .describe('The OAuth 2.1 authorization server MCP clients talk to.'),
    upstream: upstreamSchema.optional().describe('The identity provider users sign in with. Required in production.'),
    routes: z.array(routeSchema).default([]).describe('Protected routes, one per backend.'),
    broker: z
      .object({
        downstream: z.array(downstreamSchema).default([]).describe('Downstream APIs tokens can be obtained for.'),
        refreshSkewSeconds: seconds('Cached tokens are renewed this long before they expire (a token living less than twice this, at half its life).', 120),
      })
      .strict()
      .default({ downstream: [], refreshSkewSeconds: 120 })
      .describe('The token broker: downstream API tokens obtained on behalf of the signed-in user.'),
    admin: z
      .object({
        users: z.array(z.string()).default([]).describe('Upstream subjects or emails allowed into `/admin`.'),
        groups: z.array(z.string()).default([]).describe('Upstream groups allowed into `/admin`.'),
        metricsToken: z
          .string()
          .optional()
          .describe('If set, `/metrics` requires `Authorization: Bearer <token>`; use `${METRICS_TOKEN}`.'),
        metricsPort: z
          .number()
          .int()
          .min(0)
          .max(65_535)
          .optional()
          .describe('Serve `/metrics` on this separate port instead of the main one.'),
      })
      .strict()
      .default({ users: [], groups: [] })
      .describe('Who may use the admin pages, and how `/metrics` is protected.'),
    audit: z
      .object({
        output: z
          .string()
          .default('store')
          .describe('`store` only, `stdout`, or a file path for JSON lines (records always go to the store too).'),
        retentionDays: days('How long audit records stay in the store.', 30),
      })
      .strict()
      .default({ output: 'store', retentionDays: 30 })
      .describe('Audit records of sign-ins, grants and tool calls.'),
    log: z
      .object({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info')
          .describe('Least severe log level written (tokens, cookies and secrets are always redacted).'),
        format: z
          .enum(['auto', 'json', 'pretty'])
          .default('auto')
          .describe('`json`: one JSON object per line (for log shippers), written to stdout in batches: at 4 KiB or within 100 ms, and on exit. `pretty`: one short coloured line per record, for people. `auto`: pretty in the demo and on a terminal, JSON otherwise.'),
      })
      .strict()
      .default({ level: 'info', format: 'auto' })
      .describe('Logging.'),
    branding: brandingSchema.default({}).describe('Your organisation on the pages people see: consent, error and start pages. Every value is escaped; nothing is inlined.'),
    dev: z
      .object({
        insecureCookies: z
          .boolean()
          .default(false)
          .describe('Development only: drop `Secure`/`__Host-` cookie requirements on http://localhost.'),
      })
      .strict()
      .default({ insecureCookies: false })
      .describe('Development-only switches; refused or warned about in production.'),
    demo: z
      .object({
        identityProviderPort: port('Port of the local identity provider (development component).', 8081),
        graphServerPort: port('Port of the sample Graph MCP server (`examples/graph-server`).', 8082),
        directoryApiPort: port('Port of the demo directory API, which answers `GET /v1.0/me` like Microsoft Graph.', 8083),
        usersFile: z
          .string()
          .optional()
          .describe('JSON file of test users for the local identity provider (default: the built-in test users).'),
      })
      .strict()
      .default({ identityProviderPort: 8081, graphServerPort: 8082, directoryApiPort: 8083 })
      .describe('`mode: demo` only: the local development components started next to the gateway.'),
  })
  .strict();

export type GatehouseConfig = z.infer<typeof configSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
export type BrandingConfig = z.infer<typeof brandingSchema>;
export type UpstreamConfig = z.infer<typeof upstreamSchema>;
export type DownstreamConfig = z.infer<typeof downstreamSchema>;
export type PreRegisteredClient = z.infer<typeof preRegisteredClientSchema>;
export type EnterpriseIdpConfig = z.infer<typeof enterpriseIdpSchema>;
export type WorkloadIdentityConfig = z.infer<typeof workloadIdentitySchema>;
export type DemoSettings = GatehouseConfig['demo'];

/** How long a route waits for its backend's response headers: its own setting, else its type's default (above). */
export function responseHeadersTimeoutMs(route: Pick<RouteConfig, 'type' | 'timeouts'>): number {
  return route.timeouts.responseHeadersMs ?? (route.type === 'http' ? 60_000 : 300_000);
}
