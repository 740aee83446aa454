import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { ProtocolError } from '../errors/protocol-error.ts';
import { mediaTypeOf } from '../protocol/media-type.ts';

/** The body type an HTML form sends (the pages' forms have no `enctype`); WHATWG HTML §4.10.21.7. */
const FORM_MEDIA_TYPE = 'application/x-www-form-urlencoded';

/**
 * Refuses, before any body parsing, a POST to a page's form whose body is not what a form sends. Fastify parses JSON
 * and text/plain on every route, so a text/plain body reached the handler as a string and was told it was malformed
 * (400), while multipart (no parser) was 415: one mistake, two answers. A POST with no body type at all (an empty
 * form) goes on to the handler, which refuses what it lacks.
 */
export function requireFormBody(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const type = request.headers['content-type'];
  if (type === undefined || mediaTypeOf(type) === FORM_MEDIA_TYPE) return done();
  done(new ProtocolError('invalid_request', `This form is sent as ${FORM_MEDIA_TYPE}.`, { status: 415 }));
}

/**
 * What a page's form may send. The largest (the consent form, a console filter) is a few hundred bytes; the server's
 * limit (`server.bodyLimitBytes`, 4 MB by default) is for the token endpoint's and the proxy's bodies, and a form
 * body is read before the handler checks who sent it.
 */
export const FORM_BODY_LIMIT_BYTES = 64 * 1024;

/** Route options of a page's form POST: errors as the error page, only a form's body type, and a form's size. */
export const formPostRoute = { config: { errorFormat: 'html' as const }, onRequest: requireFormBody, bodyLimit: FORM_BODY_LIMIT_BYTES };
