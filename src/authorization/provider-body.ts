import type { FastifyRequest } from 'fastify';
import { readRequestBody } from '../server/request-body.ts';

/**
 * Bodies of the OAuth endpoints oidc-provider serves, read by us before the provider sees them. The provider parses
 * bodies itself, and a check of `Content-Length` alone let a chunked body through (a 40 KB chunked registration was
 * stored): the caps below hold on the bytes read, and an oversized body is a 413 before anything is parsed or stored.
 */

/** Largest registration body (RFC 7591/7592 metadata is a few hundred bytes; every stored client costs storage). */
export const REGISTRATION_MAX_BYTES = 16 * 1024;

/**
 * Largest body of the other provider endpoints (token, revoke, introspect, authorize by POST): form parameters with
 * at most a couple of JWTs (a `private_key_jwt` assertion, an RFC 8693 subject token). Below oidc-provider's own
 * limit (56 KB, answered with a 400), so an oversized body always gets our 413.
 */
export const OAUTH_BODY_MAX_BYTES = 48 * 1024;

/** A body of a few KB arrives in milliseconds; a client trickling one (slow loris) is cut off after this. */
const OAUTH_BODY_TIMEOUT_MS = 10_000;

const METHODS_WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);

/** The body of a request to a provider endpoint, read within `limit`; undefined for a method without a body. */
export async function readProviderBody(request: FastifyRequest, limit: number): Promise<Buffer | undefined> {
  const raw = request.raw;
  if (!METHODS_WITH_BODY.has(raw.method ?? '')) return undefined;
  return readRequestBody(raw, { limit, timeoutMs: OAUTH_BODY_TIMEOUT_MS, declaredLength: raw.headers['content-length'] });
}

