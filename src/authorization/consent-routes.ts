import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Client, InteractionDetails } from 'oidc-provider';
import { z } from 'zod';
import { constantTimeEqual } from '../keys/hashing.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { decideClientIdUrl, isClientIdUrl } from './client-metadata-policy.ts';
import { consentSubjectFrom, type ConsentSubject } from './consent-request.ts';
import { renderConsentPage, type ConsentView } from './consent-page.ts';
import { finishInteraction, loadInteraction, parseInteractionUid, type InteractionDeps } from './interaction-deps.ts';
import {
  CONSENT_STATE_TTL_SECONDS,
  type ApprovedConsentRecord,
  type ConsentStateRecord,
  type CsrfCookie,
} from './interaction-state.ts';
import { consentApprovedRecord, consentStateRecord } from '../records/interaction.ts';
import { consumeRecord, writeRecord } from '../store/record-access.ts';
import { finishWithGrant } from './finish-sign-in.ts';
import { DENIAL_MEMORY_SECONDS, findCovering, findForTarget, parseDecisions, remember, type RememberedDecision } from './remembered-decisions.ts';
import { isPrivateUseRedirectUri } from './redirect-uri-policy.ts';
import { isSameOriginRequest } from './request-origin.ts';
import { upstreamBrowserOrigin } from '../upstream/profile.ts';

/**
 * The consent step, BEFORE the user is sent to the upstream IdP:
 * GET  /interaction/:uid           the page (or straight on, when this browser already decided for this client)
 * POST /interaction/:uid/decision  Approve → upstream sign-in; Deny → `access_denied` to the client
 */

/** The form has three short fields; anything larger is not our form (Fastify counts the bytes read, chunked too). */
const DECISION_FORM_MAX_BYTES = 4 * 1024;

const decisionBody = z
  .object({
    consent_state: z.string().min(1).max(200),
    csrf_token: z.string().min(1).max(200),
    decision: z.enum(['approve', 'deny']),
  })
  .strict();

async function loadClient(deps: InteractionDeps, details: InteractionDetails): Promise<Client> {
  const clientId = details.params.client_id;
  const client = typeof clientId === 'string' ? await deps.provider.Client.find(clientId) : undefined;
  if (client === undefined) throw new ProtocolError('invalid_request', 'The application is no longer registered.');
  return client;
}

function trustOf(deps: InteractionDeps, client: Client): ConsentView['trust'] {
  if (deps.configuredClients.has(client.clientId)) return 'configured';
  if (client.clientIdMetadataDocument === true && decideClientIdUrl(client.clientId, deps.ctx.config.authorization.clientMetadataDocuments).verified) {
    return 'verified';
  }
  return 'unverified';
}

/** The consent page may only submit to us, and the submission may redirect on to the upstream IdP or the client. */
function consentCsp(deps: InteractionDeps, redirectUri: string): string {
  const targets = new Set(["'self'"]);
  const redirectOrigin = URL.parse(redirectUri)?.origin;
  if (redirectOrigin !== undefined && redirectOrigin !== 'null') targets.add(redirectOrigin);
  const upstreamOrigin = upstreamBrowserOrigin(deps.ctx.config.upstream);
  if (upstreamOrigin !== undefined) targets.add(upstreamOrigin);
  // A private-use scheme has no origin; a scheme source (`cursor:`) lets the final redirect to the app through.
  if (isPrivateUseRedirectUri(redirectUri)) targets.add(redirectUri.slice(0, redirectUri.indexOf(':') + 1).toLowerCase());
  return `default-src 'none'; style-src 'self'; img-src https:; form-action ${[...targets].join(' ')}; frame-ancestors 'none'; base-uri 'none'`;
}

function approvedRecord(subject: ConsentSubject): ApprovedConsentRecord {
  return {
    clientId: subject.clientId,
    redirectUri: subject.redirectUri,
    resource: subject.resourceIndicator,
    scopes: subject.scopes,
    oidcScopes: subject.oidcScopes,
  };
}

function targetOf(subject: ConsentSubject) {
  return { clientId: subject.clientId, redirectUri: subject.redirectUri, resource: subject.resource.resource, scopes: subject.scopes };
}

function decisionFor(subject: ConsentSubject, expiresAt: number): RememberedDecision {
  return { clientId: subject.clientId, redirectUri: subject.redirectUri, resource: subject.resource.resource, scopes: subject.scopes, expiresAt };
}

/** Approve: a signed-in user (provider session) gets the grant now; otherwise the upstream sign-in comes first. */
async function proceedAfterApproval(
  deps: InteractionDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  details: InteractionDetails,
  subject: ConsentSubject,
): Promise<void> {
  const approved = approvedRecord(subject);
  if (details.prompt.name === 'consent' && details.session?.accountId) {
    await finishWithGrant(deps, request, reply, details, details.session.accountId, approved);
    return;
  }
  await writeRecord(deps.ctx.store, consentApprovedRecord, details.uid, approved, { ttlSeconds: CONSENT_STATE_TTL_SECONDS });
  // A client's `login_hint` (OIDC Core §3.1.2.1) is passed on so the IdP can preselect the account.
  const loginHint = typeof details.params.login_hint === 'string' ? details.params.login_hint : undefined;
  const { authorizationUrl, stateCookie } = await deps.upstream.beginSignIn({
    interactionId: details.uid,
    ...(loginHint === undefined ? {} : { loginHint }),
  });
  deps.cookies.writeRaw(reply, 'upstream', stateCookie, CONSENT_STATE_TTL_SECONDS);
  await reply.header('cache-control', 'no-store').redirect(authorizationUrl, 303);
}

async function denied(deps: InteractionDeps, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  await finishInteraction(deps, request, reply, { error: 'access_denied', error_description: 'The user denied the request.' });
}

export function registerConsentRoutes(app: FastifyInstance, deps: InteractionDeps): void {
  const { ctx, cookies } = deps;
  const publicOrigin = new URL(ctx.publicUrl).origin;
  const htmlErrors = { errorFormat: 'html' as const };

  app.get('/interaction/:uid', { config: htmlErrors }, async (request, reply) => {
    const uid = parseInteractionUid(request);
    const details = await loadInteraction(deps, request, reply, uid);
    const client = await loadClient(deps, details);
    const subject = consentSubjectFrom(details, client, deps.resources);
    const now = ctx.clock.now();

    if (findForTarget(parseDecisions(cookies.read(request, 'denials')), targetOf(subject), now)) {
      return denied(deps, request, reply);
    }
    if (findCovering(parseDecisions(cookies.read(request, 'approvals')), targetOf(subject), now)) {
      return proceedAfterApproval(deps, request, reply, details, subject);
    }

    const consentState = ctx.random.token();
    const csrf = ctx.random.token();
    const record: ConsentStateRecord = { uid, ...approvedRecord(subject) };
    await writeRecord(ctx.store, consentStateRecord, consentState, record, { ttlSeconds: CONSENT_STATE_TTL_SECONDS });
    const csrfCookie: CsrfCookie = { csrf, consentState, uid, clientId: subject.clientId, redirectUri: subject.redirectUri };
    cookies.write(reply, 'csrf', csrfCookie, CONSENT_STATE_TTL_SECONDS);

    const html = renderConsentPage({
      formAction: `/interaction/${uid}/decision`,
      clientId: client.clientId,
      clientName: client.clientName,
      logoUri: client.logoUri,
      isClientIdUrl: isClientIdUrl(client.clientId),
      trust: trustOf(deps, client),
      redirectUri: subject.redirectUri,
      resource: subject.resource.resource,
      scopes: subject.scopes.map((name) => ({ name, description: subject.resource.scopes[name] ?? name })),
      consentState,
      csrfToken: csrf,
    });
    return reply
      .header('content-security-policy', consentCsp(deps, subject.redirectUri))
      .header('x-frame-options', 'DENY')
      // Same-origin referrers let the browser send a real `Origin` with the form post (no-referrer makes it `null`);
      // other sites (the logo host) still get nothing.
      .header('referrer-policy', 'same-origin')
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(html);
  });

  app.post('/interaction/:uid/decision', { config: htmlErrors, bodyLimit: DECISION_FORM_MAX_BYTES }, async (request, reply) => {
    const uid = parseInteractionUid(request);
    if (!isSameOriginRequest(request, publicOrigin)) {
      throw new ProtocolError('access_denied', 'This form was submitted from another site and was refused.');
    }
    const body = decisionBody.safeParse(request.body);
    if (!body.success) throw new ProtocolError('invalid_request', 'The consent form is incomplete; start again from the application.');
    const csrfCookie = cookies.read<CsrfCookie>(request, 'csrf');
    if (
      csrfCookie === undefined ||
      !constantTimeEqual(csrfCookie.csrf, body.data.csrf_token) ||
      csrfCookie.consentState !== body.data.consent_state ||
      csrfCookie.uid !== uid
    ) {
      throw new ProtocolError('access_denied', 'The consent form does not belong to this browser; start again from the application.');
    }
    const record = await consumeRecord(ctx.store, consentStateRecord, body.data.consent_state);
    if (record === undefined || record.uid !== uid) {
      throw new ProtocolError('invalid_request', 'This consent form has expired or was already used; start again from the application.');
    }
    const details = await loadInteraction(deps, request, reply, uid);
    const client = await loadClient(deps, details);
    const subject = consentSubjectFrom(details, client, deps.resources);
    // The cookie, the server-side state and the live request must all name the same client and redirect URI.
    const bound = [csrfCookie, record].every((item) => item.clientId === subject.clientId && item.redirectUri === subject.redirectUri);
    if (!bound || record.resource !== subject.resourceIndicator) {
      throw new ProtocolError('access_denied', 'The consent form does not match this request; start again from the application.');
    }
    cookies.clear(reply, 'csrf');
    const now = ctx.clock.now();
    request.log.info({ clientId: subject.clientId, resource: subject.resource.resource, decision: body.data.decision }, 'consent decision');

    if (body.data.decision === 'deny') {
      const denials = remember(parseDecisions(cookies.read(request, 'denials')), decisionFor(subject, now + DENIAL_MEMORY_SECONDS * 1000), now);
      cookies.write(reply, 'denials', denials, DENIAL_MEMORY_SECONDS);
      return denied(deps, request, reply);
    }
    const rememberSeconds = ctx.config.authorization.consentRememberDays * 24 * 3600;
    const approvals = remember(parseDecisions(cookies.read(request, 'approvals')), decisionFor(subject, now + rememberSeconds * 1000), now);
    cookies.write(reply, 'approvals', approvals, rememberSeconds);
    return proceedAfterApproval(deps, request, reply, details, subject);
  });
}
