import { accessSync, constants, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { entraTenantProblems } from './entra-tenants.ts';
import { checkHttpRoutesCoveringMcpBackends } from './http-route-overlap.ts';
import { unreadableFileReason } from './file-paths.ts';
import { cookieSecurityProblem, isLoopbackUrl, resolvePublicUrl } from './public-url.ts';
import type { GatehouseConfig } from './schema.ts';
import { toolExpressionProblem } from './tool-expressions.ts';
import { argumentReadsOf } from './argument-reads.ts';
import { sampleServerRoutes } from './demo-defaults.ts';
import { foldPolicyName } from '../protocol/tool-names.ts';

/**
 * Rules that involve more than one field, or the file system, checked after the schema accepted each field on its
 * own. Production rules are strict because a wrong setting there is a security hole that would only show up later
 * (an http issuer, a route nobody can reach, an OBO target that does not exist); demo mode relaxes only what the
 * local stand-ins need. Each problem names the field and the fix.
 */
export interface RuleResult {
  problems: string[];
  warnings: string[];
}

/** Paths the gateway serves itself; a route there would shadow the OAuth endpoints or health checks. */
const RESERVED_PATHS = ['/authorize', '/token', '/register', '/revoke', '/introspect', '/jwks', '/.well-known', '/admin', '/healthz', '/readyz', '/metrics', '/interaction', '/callback', '/assets', '/account', '/favicon.ico'];

export function checkConfigRules(config: GatehouseConfig): RuleResult {
  const result: RuleResult = { problems: [], warnings: [] };
  checkRoutes(config, result);
  checkHttpRoutesCoveringMcpBackends(config.routes, result);
  checkDownstreamReferences(config, result);
  entraTenantProblems(config, result);
  checkStore(config, result);
  checkKeyFile(config, result);
  checkAuditFile(config, result);
  if (config.mode === 'production') checkProduction(config, result);
  checkCookies(config, result);
  checkPublicUrlPath(config, result);
  if (config.mode === 'demo') checkDemoPorts(config, result);
  return result;
}

/**
 * The demo runs four listeners in one process: two given the same port failed at start as "port N is in use — stop
 * the other process", when the other process was the demo's own stand-in.
 */
function checkDemoPorts(config: GatehouseConfig, { problems }: RuleResult): void {
  // The stand-ins start with the local identity provider only (src/demo/run-demo.ts, usesLocalIdentityProvider).
  if (config.upstream?.type !== 'oidc' || config.upstream.issuer !== `http://localhost:${config.demo.identityProviderPort}`) return;
  const listeners = [
    { port: config.server.port, name: 'the gateway (server.port, --port, GATEHOUSE_PORT)' },
    { port: config.demo.identityProviderPort, name: 'the local identity provider (GATEHOUSE_DEMO_IDP_PORT)' },
    // The sample server starts only when a route's backend is on its port.
    ...(sampleServerRoutes(config).length > 0
      ? [{ port: config.demo.graphServerPort, name: 'the sample Graph MCP server (GATEHOUSE_DEMO_GRAPH_PORT)' }]
      : []),
    { port: config.demo.directoryApiPort, name: 'the demo directory API (GATEHOUSE_DEMO_DIRECTORY_PORT)' },
  ].filter((listener) => listener.port !== 0);
  for (const [index, listener] of listeners.entries()) {
    const first = listeners.findIndex((other) => other.port === listener.port);
    if (first !== index) problems.push(`demo: ${listeners[first]!.name} and ${listener.name} are both given port ${listener.port} — give each its own`);
  }
}

/**
 * Gatehouse serves its MCP routes, their metadata, the sign-in callback and its pages at the root of its host: with
 * a path in `server.publicUrl` (`https://api.example.com/gatehouse`) every URL it advertised named a path it did not
 * serve — the routes' resource URLs and metadata, the upstream sign-in's `redirect_uri` — so no client could connect
 * and no one could sign in, although the authorization server's own endpoints answered. Refused until a path prefix
 * is served throughout: a host name of its own (or a proxy that strips the prefix and a public URL without it) works.
 */
function checkPublicUrlPath(config: GatehouseConfig, { problems }: RuleResult): void {
  const configured = config.server.publicUrl;
  if (!configured || !URL.canParse(configured)) return;
  const path = new URL(configured).pathname.replace(/\/+$/, '');
  if (path !== '') {
    problems.push(`server.publicUrl: must be the root of its host, without a path (got "${path}") — Gatehouse serves its routes, metadata and sign-in at the root; give it a host name of its own`);
  }
}

function checkProduction(config: GatehouseConfig, { problems, warnings }: RuleResult): void {
  const publicUrl = config.server.publicUrl;
  if (!publicUrl) {
    problems.push('server.publicUrl: required in production — the https URL clients use, e.g. https://gatehouse.example.com (or set GATEHOUSE_PUBLIC_URL)');
  } else {
    checkPublicUrl(publicUrl, { problems, warnings });
  }

  const upstream = config.upstream;
  if (!upstream) {
    problems.push('upstream: required in production — the identity provider users sign in with (type, clientId, clientAuth)');
  } else if (upstream.type === 'oidc') {
    if (!upstream.issuer) problems.push('upstream.issuer: required for type oidc — the issuer URL of your identity provider');
    else checkHttpsUrl('upstream.issuer', upstream.issuer, { problems, warnings });
  } else if (!upstream.entra) {
    problems.push('upstream.entra.tenantId: required for type entra — your directory (tenant) id, or organizations/common');
  }
  if (upstream?.clientAuth.method === 'federated' && upstream.clientAuth.issuerUrl) {
    warnings.push('upstream.clientAuth.issuerUrl: meant for the local demo; production uses tokenFile or managed identity');
  }

  if (config.routes.length === 0) {
    problems.push('routes: at least one route is required in production — e.g. { path: /mcp, backend: https://mcp.internal/mcp }');
  }

  const registration = config.authorization.dynamicRegistration;
  if (registration.perLoopbackIpPerHour !== undefined && registration.perLoopbackIpPerHour > registration.perIpPerHour) {
    warnings.push('authorization.dynamicRegistration.perLoopbackIpPerHour: behind a reverse proxy without server.trustProxy every client is loopback — development only');
  }
  if (config.authorization.clientMetadataDocuments.allowLoopback) {
    warnings.push('authorization.clientMetadataDocuments.allowLoopback: lets clients point Gatehouse at loopback addresses — development only');
  }
}

/** The authorization server refuses to start where its cookies could never be set (or would travel in the clear). */
function checkCookies(config: GatehouseConfig, { problems, warnings }: RuleResult): void {
  // In production a missing public URL is already a problem of its own; the localhost default says nothing more.
  if (config.mode === 'production' && !config.server.publicUrl) return;
  if (config.server.publicUrl && !URL.canParse(config.server.publicUrl)) return;
  const publicUrl = resolvePublicUrl(config);
  // Production already refuses an http public URL off this machine (checkPublicUrl); one line for it is enough.
  if (config.mode === 'production' && !publicUrl.startsWith('https:') && !isLoopbackUrl(publicUrl)) return;
  const problem = cookieSecurityProblem(publicUrl, config.dev.insecureCookies);
  if (problem) {
    problems.push(problem);
    return;
  }
  if (config.mode !== 'production' || !config.dev.insecureCookies) return;
  // A deployed configuration has no business carrying the setting, even where https makes it ignored.
  if (isLoopbackUrl(publicUrl)) warnings.push('dev.insecureCookies: cookies without Secure/__Host- — development only');
  else problems.push('dev.insecureCookies: development only — remove it (or use mode: demo on localhost)');
}

function checkPublicUrl(publicUrl: string, result: RuleResult): void {
  const url = new URL(publicUrl);
  if (url.search || url.hash) {
    result.problems.push(`server.publicUrl: must not have a query or fragment — it is the OAuth issuer (got "${publicUrl}")`);
  }
  checkHttpsUrl('server.publicUrl', publicUrl, result);
}

/** https required; plain http only for this machine (local testing), with a warning. */
function checkHttpsUrl(field: string, value: string, { problems, warnings }: RuleResult): void {
  const protocol = URL.canParse(value) ? new URL(value).protocol : undefined;
  if (protocol === 'https:') return;
  if (protocol === 'http:' && isLoopbackUrl(value)) {
    warnings.push(`${field}: plain http on localhost ("${value}") — acceptable for local testing only`);
    return;
  }
  problems.push(`${field}: must be an https URL (got "${value}")`);
}

function checkRoutes(config: GatehouseConfig, { problems, warnings }: RuleResult): void {
  const seen = new Map<string, number>();
  config.routes.forEach((route, index) => {
    const path = route.path.length > 1 ? route.path.replace(/\/+$/, '') : route.path;
    const earlier = seen.get(path);
    if (earlier !== undefined) {
      problems.push(`routes[${index}].path: "${route.path}" is already used by routes[${earlier}] — each route needs its own path`);
    }
    seen.set(path, index);
    // `/` is the start page's (and would take every path above: Fastify refused it at start, a raw error, exit 1).
    if (path === '/') problems.push(`routes[${index}].path: "/" is Gatehouse's start page — give the route a path of its own, e.g. /mcp`);
    const reserved = RESERVED_PATHS.find((prefix) => path === prefix || path.startsWith(`${prefix}/`));
    if (reserved) problems.push(`routes[${index}].path: "${route.path}" is reserved for Gatehouse's own ${reserved} endpoint — choose another path`);
    if (route.identity.mode === 'obo' && !route.identity.downstream) {
      problems.push(`routes[${index}].identity.downstream: required with mode obo — the broker.downstream entry whose token is forwarded`);
    }
    const expressions = [
      [`routes[${index}].defaultToolPolicy.allow`, route.defaultToolPolicy?.allow],
      ...Object.entries(route.tools).map(([tool, policy]) => [`routes[${index}].tools.${tool}.allow`, policy.allow]),
    ];
    for (const [field, source] of expressions) {
      const problem = source === undefined ? undefined : toolExpressionProblem(source);
      if (problem) problems.push(`${field}: ${problem} (a CEL expression over user, client, tool and args that is true to allow)`);
      else if (source !== undefined && argumentReadsOf(source)?.computed === true) {
        warnings.push(
          `${field}: reads argument names it computes (an index or \`in\` that is no constant string, a key tested with startsWith or matches): another spelling of such a name (\`Path\` for \`path\`) cannot be refused, and a backend that matches names without regard to case reads it — write the names out (args.path, args["path"], "path" in args)`,
        );
      }
    }
    if (route.bodyLimitBytes !== undefined && route.bodyLimitBytes > config.server.bodyLimitBytes) {
      problems.push(`routes[${index}].bodyLimitBytes: ${route.bodyLimitBytes} is more than server.bodyLimitBytes (${config.server.bodyLimitBytes}), which bounds every request — lower it or raise that`);
    }
    // A called name is judged by the policy entry it folds to (case, NFKC, invisible characters, outer spaces): two
    // entries folding alike would be one tool to the call check and two to tools/list, each hiding what the other allows.
    const byFolded = new Map<string, string>();
    for (const tool of Object.keys(route.tools)) {
      const same = byFolded.get(foldPolicyName(tool));
      if (same !== undefined) problems.push(`routes[${index}].tools: "${same}" and "${tool}" name one tool (names are compared without case, width or invisible characters) — keep one`);
      else byFolded.set(foldPolicyName(tool), tool);
    }
    const defaulted = route.requiredScopes.length === 1 && route.requiredScopes[0] === 'mcp:tools';
    for (const scope of route.requiredScopes) {
      if (Object.hasOwn(route.scopes, scope)) continue;
      // Said so when it is the default: a route that names its own scopes and no requiredScopes met an error about a
      // setting it never wrote.
      problems.push(
        defaulted
          ? `routes[${index}].requiredScopes: "mcp:tools" (what requiredScopes is by default) is not one of this route's scopes (${Object.keys(route.scopes).join(', ')}) — set requiredScopes to the scopes every request must carry`
          : `routes[${index}].requiredScopes: "${scope}" is not one of this route's scopes (${Object.keys(route.scopes).join(', ')})`,
      );
    }
  });
}

function checkDownstreamReferences(config: GatehouseConfig, { problems }: RuleResult): void {
  const names = config.broker.downstream.map((entry) => entry.name);
  const known = new Set(names);
  names.forEach((name, index) => {
    if (names.indexOf(name) !== index) problems.push(`broker.downstream[${index}].name: "${name}" is used twice — names must be unique`);
  });
  const listed = known.size > 0 ? `broker.downstream has: ${[...known].join(', ')}` : 'broker.downstream is empty';
  config.routes.forEach((route, index) => {
    const wanted = route.identity.downstream;
    if (wanted && !known.has(wanted)) {
      problems.push(`routes[${index}].identity.downstream: "${wanted}" is not a broker.downstream name (${listed})`);
    }
    route.downstream.forEach((name, position) => {
      if (!known.has(name)) problems.push(`routes[${index}].downstream[${position}]: "${name}" is not a broker.downstream name (${listed})`);
    });
  });
  config.authorization.clients.forEach((client, index) => {
    client.allowedDownstream.forEach((name, position) => {
      if (!known.has(name)) {
        problems.push(`authorization.clients[${index}].allowedDownstream[${position}]: "${name}" is not a broker.downstream name (${listed})`);
      }
    });
  });
}

function checkStore(config: GatehouseConfig, { problems }: RuleResult): void {
  if (config.store.type !== 'redis') return;
  const redisUrl = config.store.redisUrl;
  if (!redisUrl) {
    problems.push('store.redisUrl: required with store.type redis — e.g. ${REDIS_URL} or GATEHOUSE_REDIS_URL');
  } else if (!/^rediss?:\/\//.test(redisUrl)) {
    // The value may hold a password: say what is wrong without echoing it.
    problems.push('store.redisUrl: must start with redis:// or rediss:// (TLS)');
  } else if (!URL.canParse(redisUrl) || !decodable(new URL(redisUrl))) {
    // What the store parses it with (redis-connection.ts, ioredis decoding the credentials): passed here, it failed
    // only when the store opened.
    problems.push('store.redisUrl: is not a valid URL — check the host, the port (1–65535) and that a password is percent-encoded (% as %25)');
  }
}

function decodable(url: URL): boolean {
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
    return true;
  } catch {
    return false;
  }
}

/**
 * An audit file whose directory is missing or not writable was found only after start, as an error line per batch
 * (`config check` and `doctor` passed). A warning, not a refusal: the records still go to the store, and an admin
 * command run elsewhere with the same file must not fail for it.
 */
function checkAuditFile(config: GatehouseConfig, { warnings }: RuleResult): void {
  const output = config.audit.output;
  if (output === 'store' || output === 'stdout') return;
  const directory = dirname(output);
  try {
    if (!statSync(directory).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(directory, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not writable' : code === 'ENOTDIR' ? 'is not a directory' : `cannot be used (${code ?? 'error'})`;
    warnings.push(`audit.output: the directory "${directory}" ${why}: no audit line will be written to the file (the records still go to the store)`);
  }
}

function checkKeyFile(config: GatehouseConfig, { problems }: RuleResult): void {
  if (config.keys.source !== 'file') return;
  const file = config.keys.file;
  if (!file) {
    problems.push('keys.file: required with keys.source file — the key set written by `gatehouse init`');
    return;
  }
  try {
    accessSync(file, constants.R_OK);
    if (!statSync(file).isFile()) problems.push(`keys.file: "${file}" is not a file`);
  } catch (error) {
    problems.push(`keys.file: "${file}" ${unreadableFileReason(error)} — run \`gatehouse init\` or fix the path`);
  }
}
