import * as querystring from 'node:querystring';
import { methodsToRefuse } from '../server/http-methods.ts';
import { answerPublicPreflights } from '../server/public-document-cors.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { providerResponseHeaders } from '../server/security-headers.ts';
import type { CurrentProvider } from './current-provider.ts';
import { OAUTH_BODY_MAX_BYTES, readProviderBody, REGISTRATION_MAX_BYTES } from './provider-body.ts';
import { withReadBody } from '../server/replayed-request.ts';
import { guardRegistration } from './registration-limit.ts';
import type { ProtectedResources } from './protected-resources.ts';
import { hasEscapedMemberName, memberNamesProblem } from '../protocol/duplicate-members.ts';
import { mediaTypeOf } from '../protocol/media-type.ts';

/**
 * oidc-provider is a Koa application; it is given the raw Node request for its own paths before Fastify reads the
 * body (a route-level `onRequest` hook that hijacks the reply), so the provider parses and validates the body itself.
 * Our pages (consent, callback) stay ordinary Fastify routes.
 */

/**
 * The provider's endpoints and the methods it serves on each, as configured in provider-configuration.ts (no POST
 * to the authorization endpoint, no RFC 7592 update or delete). Any other method is a 405 naming these (RFC 9110
 * §15.5.6) in the OAuth JSON every other refusal uses; handed to the provider, it was Koa's plain-text 404.
 */
const PROVIDER_ROUTES: ReadonlyArray<readonly [string, readonly HTTPMethods[]]> = [
  ['/authorize', ['GET']],
  ['/authorize/:uid', ['GET']],
  ['/token', ['POST', 'OPTIONS']],
  ['/register', ['POST', 'OPTIONS']],
  ['/register/:clientId', ['GET']],
  ['/revoke', ['POST', 'OPTIONS']],
  ['/introspect', ['POST', 'OPTIONS']],
];

/** What the metadata documents serve (Fastify answers HEAD with the GET route). */
const WELL_KNOWN_METHODS = 'GET, HEAD, OPTIONS';


function refuseMethod(allow: string) {
  return async function refuseProviderMethod(): Promise<never> {
    throw new ProtocolError('invalid_request', `This endpoint accepts ${allow} only.`, { status: 405, headers: { allow } });
  };
}

export interface ProviderMountOptions {
  ctx: GatehouseContext;
  provider: CurrentProvider;
  /** The routes as resources: a `resource` naming one in another spelling is handed over in its canonical one. */
  resources: Pick<ProtectedResources, 'find'>;
}

/**
 * Every `resource` parameter that names a route in another spelling (upper-case scheme or host, a trailing slash:
 * MCP 2026-07-28 "Canonical Server URI") in the route's canonical one; returns whether any changed. oidc-provider
 * compares resource indicators as strings: a grant approved for `…/mcp/` refused the canonical `…/mcp` at `/token`,
 * and the other way round, so a client that normalised at only one of the two steps could not get its tokens.
 */
function canonicalizeResourceParams(params: URLSearchParams, resources: Pick<ProtectedResources, 'find'>): boolean {
  const given = params.getAll('resource');
  if (given.length === 0) return false;
  const canonical = given.map((resource) => resources.find(resource)?.resource ?? resource);
  if (canonical.every((resource, index) => resource === given[index])) return false;
  params.delete('resource');
  for (const resource of canonical) params.append('resource', resource);
  return true;
}

/**
 * The request's query with its `resource` parameters canonical (the query unchanged when none needed it). Parsed
 * whenever there is a query: a parameter's name may be percent-encoded (`%72esource=`), which the provider decodes,
 * and a look for `resource=` in the raw text missed it — the grant then held the canonical spelling, the provider's
 * request the other, and every approval sent the browser round again without end.
 */
function canonicalQuery(query: string, resources: Pick<ProtectedResources, 'find'>): string {
  if (query.length <= 1) return query;
  const params = new URLSearchParams(query.slice(1));
  return canonicalizeResourceParams(params, resources) ? `?${params.toString()}` : query;
}

/**
 * The token, revocation and introspection endpoints take a UTF-8 form (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1).
 * Anything else was handed to the provider, which read no parameters from it and answered a request with a JSON
 * body, no `Content-Type` or a UTF-16 charset "no client authentication mechanism provided": true of what it read,
 * no help to whoever sent it. A coded body (`Content-Encoding: gzip`) is not read at all: 415, naming what is (RFC
 * 9110 §15.5.16).
 */
function refuseUnreadableForm(request: FastifyRequest, body: Buffer | undefined): void {
  const coding = request.headers['content-encoding'];
  if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') {
    throw new ProtocolError('invalid_request', 'The request body must not be content-coded.', { status: 415, headers: { 'accept-encoding': 'identity' } });
  }
  const type = request.headers['content-type'];
  if (mediaTypeOf(type) !== 'application/x-www-form-urlencoded') {
    throw new ProtocolError('invalid_request', 'The request body must be a form, `Content-Type: application/x-www-form-urlencoded`.');
  }
  // A form is percent-encoded ASCII, read the same under any charset that extends ASCII (Java's form entities say
  // ISO-8859-1 by default); one whose bytes are not ASCII at all (UTF-16, UTF-32) is not read.
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(type ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && /^(?:utf-?(?:16|32)|ucs-?[24])/.test(charset)) {
    throw new ProtocolError('invalid_request', 'The form must be UTF-8: a UTF-16 or UTF-32 body is not read.');
  }
  // The provider reads the first 1,000 parameters and drops the rest without a word, while a check here reading all
  // of them would judge another request; no OAuth request has more than a few dozen.
  if (body !== undefined && countByte(body, 0x26) >= MAX_FORM_PARAMETERS) {
    throw new ProtocolError('invalid_request', `The form has more than ${MAX_FORM_PARAMETERS} parameters.`);
  }
}

const MAX_FORM_PARAMETERS = 256;

function countByte(buffer: Buffer, byte: number): number {
  let count = 0;
  for (let index = buffer.indexOf(byte); index !== -1; index = buffer.indexOf(byte, index + 1)) count++;
  return count;
}

/** A form body with its `resource` parameters canonical (the same bytes when none needed it). */
function canonicalForm(request: FastifyRequest, body: Buffer | undefined, resources: Pick<ProtectedResources, 'find'>): Buffer | undefined {
  if (body === undefined || body.length === 0 || !/^application\/x-www-form-urlencoded\b/i.test(request.headers['content-type'] ?? '')) return body;
  const params = new URLSearchParams(body.toString('utf8'));
  return canonicalizeResourceParams(params, resources) ? Buffer.from(params.toString(), 'utf8') : body;
}

/**
 * Makes the raw request look like it arrived at the public URL, whatever proxy chain it crossed: oidc-provider builds
 * endpoint URLs and cookie `Secure` flags from the request, and they must match the issuer byte for byte.
 * The client address is the one Fastify resolved with the configured `trustProxy`, not a client-supplied header.
 */
export function presentAsPublicRequest(request: FastifyRequest, publicUrl: URL): void {
  const headers = request.raw.headers;
  headers.host = publicUrl.host;
  headers['x-forwarded-proto'] = publicUrl.protocol.slice(0, -1);
  // No address when the client already went away (or on a Unix socket without a proxy): claim none rather than
  // send the provider an `undefined` header value.
  if (request.ip === undefined) delete headers['x-forwarded-for'];
  else headers['x-forwarded-for'] = request.ip;
  delete headers['x-forwarded-host'];
  delete headers['x-forwarded-port'];
  delete headers.forwarded;
}

function registrationCors(request: FastifyRequest, reply: FastifyReply): boolean {
  // RFC 7591 registration is open to any origin (browser-based MCP clients register themselves); no credentials.
  if (request.headers.origin === undefined) return false;
  reply.raw.setHeader('access-control-allow-origin', '*');
  reply.raw.setHeader('access-control-expose-headers', 'WWW-Authenticate');
  if (request.method !== 'OPTIONS') return false;
  reply.raw.writeHead(204, {
    'access-control-allow-methods': 'POST',
    'access-control-allow-headers': 'Content-Type, Authorization',
    'access-control-max-age': '3600',
  });
  reply.raw.end();
  return true;
}

/**
 * A token request without a DPoP proof for a route that takes only DPoP-bound tokens (`dpop: required`) is refused
 * here, before the provider issues a Bearer token that every use of would be refused (401 `invalid_token`): the
 * client learnt that only after the whole browser flow. Refused before the code or refresh token is spent, so the
 * client can ask again with a proof. (RFC 9449 §5; the route's metadata says `dpop_bound_access_tokens_required`.)
 *
 * The resource is the request's `resource`, or, where it names none, the one the code or refresh token was granted
 * for (the provider issues for the granted resource then): a client that named the resource only at `/authorize`
 * got its Bearer token. Client credentials always name theirs (provider-configuration.ts, requireNamedResource); the
 * assertion grants check theirs once the assertion names it (grants/verify-assertion.ts).
 */
async function refuseBearerForDpopResource(
  request: FastifyRequest,
  body: Buffer | undefined,
  resources: Pick<ProtectedResources, 'find'>,
  provider: CurrentProvider,
): Promise<void> {
  // An empty `DPoP:` is no proof to the provider either (it issues a Bearer token for it).
  if (request.method !== 'POST' || body === undefined || request.headers.dpop) return;
  // Read as the provider reads the form (its `querystring.parse`, which stops at 1,000 parameters): a `resource`
  // after those is one the provider never sees, and it issues for the granted resource instead.
  const params = querystring.parse(body.toString('utf8'));
  let named = [params.resource ?? []].flat();
  if (named.length === 0) named = await grantedResources(params, provider);
  const requiring = named.find((resource) => resources.find(resource)?.route.dpop === 'required');
  if (requiring === undefined) return;
  throw new ProtocolError('invalid_request', `${requiring} accepts only DPoP-bound access tokens (RFC 9449): send the token request with a DPoP proof.`);
}

/** The resources the code or refresh token of a token request was granted for; none when it names neither or is unknown. */
async function grantedResources(params: querystring.ParsedUrlQuery, provider: CurrentProvider): Promise<string[]> {
  const grantType = params.grant_type;
  const value = params[grantType === 'authorization_code' ? 'code' : grantType === 'refresh_token' ? 'refresh_token' : ''];
  // Not one value (absent, or given twice): the provider refuses the request itself.
  if (typeof value !== 'string' || value === '') return [];
  // The provider's own lookup (what its grant will read next); an unknown or malformed value is the grant's to refuse.
  const model = grantType === 'authorization_code' ? provider.get().AuthorizationCode : provider.get().RefreshToken;
  const found = await model.find(value).catch(() => undefined);
  const resource = found?.resource;
  return resource === undefined ? [] : Array.isArray(resource) ? resource : [resource];
}

export function mountProvider(app: FastifyInstance, options: ProviderMountOptions): void {
  const { ctx, provider, resources } = options;
  const publicUrl = new URL(ctx.publicUrl);
  const basePath = publicUrl.pathname === '/' ? '' : publicUrl.pathname.replace(/\/$/, '');

  const securityHeaders = providerResponseHeaders({ hsts: ctx.publicUrl.startsWith('https://') });
  const handToProvider = (wellKnown: boolean, allow: string) => async (request: FastifyRequest, reply: FastifyReply) => {
    // The provider answers OPTIONS only as a CORS preflight; without an Origin it fell through to Koa's plain-text
    // 404. An OPTIONS that is no preflight asks what the resource allows (RFC 9110 §9.3.7).
    if (request.method === 'OPTIONS' && request.headers.origin === undefined) return reply.code(204).header('allow', allow).send();
    const path = request.url.split('?', 1)[0] ?? '';
    const registration = path.startsWith(`${basePath}/register`);
    if (registration && registrationCors(request, reply)) {
      reply.hijack();
      return;
    }
    let body = await readProviderBody(request, registration ? REGISTRATION_MAX_BYTES : OAUTH_BODY_MAX_BYTES);
    if (registration) {
      await guardRegistration(ctx, request);
      // As on MCP POSTs (protocol/duplicate-members.ts): the provider's JSON.parse keeps the last of two
      // `redirect_uris`, while anything in front that read the first judged another registration.
      const text = body?.toString('utf8');
      // Client metadata names are ASCII words; one written with escapes is read by the provider's own parse, which
      // may misread it where the check's parse did not (see protocol/duplicate-members.ts).
      if (text !== undefined && hasEscapedMemberName(text)) {
        throw new ProtocolError('invalid_client_metadata', 'Member names of a registration are written without escapes.');
      }
      // No escaped name left, so nothing misread: only a duplicate to find.
      if (text !== undefined && memberNamesProblem(text) === 'duplicate') {
        throw new ProtocolError('invalid_client_metadata', 'An object of the registration names one member twice (RFC 8259 §4).');
      }
    } else {
      if (request.method === 'POST') refuseUnreadableForm(request, body);
      body = canonicalForm(request, body, resources);
      if (path === `${basePath}/token`) await refuseBearerForDpopResource(request, body, resources, provider);
    }
    presentAsPublicRequest(request, publicUrl);
    const raw = request.raw as typeof request.raw & { originalUrl?: string };
    const query = canonicalQuery(request.url.slice(path.length), resources);
    if (basePath !== '') {
      // The provider routes without the issuer's path; `originalUrl` tells it the mount path for the URLs it builds.
      // RFC 8414 §3.1: a path issuer's metadata lives at /.well-known/oauth-authorization-server{path}.
      const inner = wellKnown ? path.slice(0, path.length - basePath.length) : path.slice(basePath.length);
      raw.originalUrl = basePath + inner + query;
      raw.url = inner + query;
    } else if (query !== request.url.slice(path.length)) {
      raw.url = path + query;
    }
    reply.hijack();
    // A hijacked reply skips Fastify's header handling: the request id goes on the raw response, where the provider's
    // answers (and its error page, which shows it) carry it.
    reply.raw.setHeader('x-request-id', request.id);
    for (const name in securityHeaders) reply.raw.setHeader(name, securityHeaders[name]!);
    provider.handle(withReadBody(raw, body), reply.raw);
  };

  for (const [route, served] of PROVIDER_ROUTES) {
    // Without dynamic registration the provider has no registration endpoint: a 404 like any unknown path.
    if (route.startsWith('/register') && !ctx.config.authorization.dynamicRegistration.enabled) continue;
    app.route({ method: [...served], url: basePath + route, onRequest: handToProvider(false, served.join(', ')), handler: async () => undefined });
    // A GET route answers HEAD too (Fastify's head route): its 405 names it, as the metadata documents' does.
    const allowed = served.includes('GET') ? [...served, 'HEAD'] : served;
    app.route({ method: methodsToRefuse(app, served, served.includes('GET') ? ['HEAD'] : []), url: basePath + route, exposeHeadRoute: false, handler: refuseMethod(allowed.join(', ')) });
  }
  // The JWKS comes from the keyring itself, not the provider's copy: backends verify identity assertions the proxy
  // signs with whatever key is current, so the published set must follow every reload at once.
  app.get(`${basePath}/jwks`, async (_request, reply) =>
    reply
      .header('access-control-allow-origin', '*')
      .header('cache-control', 'public, max-age=60')
      .type('application/jwk-set+json; charset=utf-8')
      .send(JSON.stringify(ctx.keyring.publicJwks())),
  );
  // Readable from any origin, so preflighted from any: a browser client verifying tokens may send its own headers.
  answerPublicPreflights(app, `${basePath}/jwks`, 'GET, HEAD, OPTIONS');
  app.route({ method: methodsToRefuse(app, ['GET'], ['HEAD', 'OPTIONS']), url: `${basePath}/jwks`, exposeHeadRoute: false, handler: refuseMethod('GET, HEAD, OPTIONS') });
  for (const document of ['oauth-authorization-server', 'openid-configuration']) {
    const url = basePath === '' ? `/.well-known/${document}` : `/.well-known/${document}${basePath}`;
    app.route({ method: ['GET', 'OPTIONS'], url, onRequest: handToProvider(true, WELL_KNOWN_METHODS), handler: async () => undefined });
    app.route({ method: methodsToRefuse(app, ['GET', 'OPTIONS'], ['HEAD']), url, exposeHeadRoute: false, handler: refuseMethod(WELL_KNOWN_METHODS) });
    if (basePath !== '') {
      // OpenID Connect Discovery 1.0 §4 appends instead of inserting; serve both forms.
      const appended = `${basePath}/.well-known/${document}`;
      app.route({ method: ['GET', 'OPTIONS'], url: appended, onRequest: handToProvider(false, WELL_KNOWN_METHODS), handler: async () => undefined });
      app.route({ method: methodsToRefuse(app, ['GET', 'OPTIONS'], ['HEAD']), url: appended, exposeHeadRoute: false, handler: refuseMethod(WELL_KNOWN_METHODS) });
    }
  }
}
