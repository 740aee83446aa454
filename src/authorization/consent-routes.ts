import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { BrowserCookies } from './browser-cookies.ts';
import type { Client, InteractionDetails } from 'oidc-provider';
import { decideClientIdUrl, isClientIdUrl } from './client-metadata-policy.ts';
import { approvedRecord, consentDecisionHandler, DECISION_FORM_MAX_BYTES, deniedByUser, loadClient, proceedAfterApproval, promptRequested } from './consent-decision.ts';
import { consentSubjectFrom, type ConsentSubject } from './consent-request.ts';
import { renderConsentPage, type ConsentView } from './consent-page.ts';
import { finishInteraction, loadInteraction, parseInteractionUid, type InteractionDeps } from './interaction-deps.ts';
import { CONSENT_STATE_TTL_SECONDS, MAX_OPEN_CONSENT_PAGES, type ConsentStateRecord, type CsrfCookie } from './interaction-state.ts';
import { consentStateRecord } from '../records/interaction.ts';
import { readRecord, writeRecord } from '../store/record-access.ts';
import { accountRecord } from '../records/account.ts';
import { findCovering, findForTarget, isWithdrawn, parseDecisions } from './remembered-decisions.ts';
import { isPrivateUseRedirectUri } from './redirect-uri-policy.ts';
import { describeScopes } from './protected-resources.ts';
import { upstreamBrowserOrigin } from '../upstream/profile.ts';
import { cspOrigin } from '../config/csp-source.ts';
import { formPostRoute } from '../server/form-routes.ts';
import { ProtocolError } from '../errors/protocol-error.ts';

/**
 * The consent step, BEFORE the user is sent to the upstream IdP:
 * GET  /interaction/:uid           the page (or straight on, when this browser already decided for this client)
 *                                  (or `server_error` to the client, when the provider asks again for what it was
 *                                  just given: `askedAgain`)
 * POST /interaction/:uid/decision  Approve → upstream sign-in; Deny → `access_denied` to the client
 *                                  (consent-decision.ts: a list of named steps)
 */

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
  const redirectOrigin = cspOrigin(redirectUri);
  if (redirectOrigin !== undefined) targets.add(redirectOrigin);
  const upstreamOrigin = upstreamBrowserOrigin(deps.ctx.config.upstream);
  if (upstreamOrigin !== undefined) targets.add(upstreamOrigin);
  // A private-use scheme has no origin; a scheme source (`cursor:`) lets the final redirect to the app through.
  if (isPrivateUseRedirectUri(redirectUri)) targets.add(redirectUri.slice(0, redirectUri.indexOf(':') + 1).toLowerCase());
  // Client logos are https images from anywhere (consent-page.ts allows no other scheme); a branding logo may be ours.
  return `default-src 'none'; style-src 'self'; img-src 'self' https:; form-action ${[...targets].join(' ')}; frame-ancestors 'none'; base-uri 'none'`;
}

/**
 * The user this browser is already signed in as at the authorization server (oidc-provider's session from an earlier
 * sign-in), with the name and e-mail recorded at that sign-in. Without a session the upstream sign-in follows the
 * page, so no one is known yet and the page says so.
 */
async function signedInUser(deps: InteractionDeps, details: InteractionDetails): Promise<ConsentView['signedInAs']> {
  const subject = details.session?.accountId;
  if (subject === undefined) return undefined;
  const account = await readRecord(deps.ctx.store, accountRecord, subject, { invalid: 'absent' });
  return { subject, name: account?.name, email: account?.email };
}

function targetOf(subject: ConsentSubject) {
  return { clientId: subject.clientId, redirectUri: subject.redirectUri, resource: subject.resource.resource, scopes: subject.scopes };
}

/**
 * Clears the CSRF cookies of the oldest consent pages this browser has open beyond MAX_OPEN_CONSENT_PAGES − 1, making
 * room for the one being shown (`uid`): Approve on a page that old asks the user to start again.
 */
function forgetOldestConsentPages(cookies: BrowserCookies, request: FastifyRequest, reply: FastifyReply, uid: string): void {
  const open = cookies
    .keysOf(request, 'csrf')
    .filter((key) => key !== uid)
    .map((key) => ({ key, shownAt: cookies.read<CsrfCookie>(request, { kind: 'csrf', key })?.shownAt ?? 0 }))
    .sort((a, b) => b.shownAt - a.shownAt);
  for (const stale of open.slice(MAX_OPEN_CONSENT_PAGES - 1)) cookies.clear(reply, { kind: 'csrf', key: stale.key });
}

/**
 * The provider opened this interaction right after one Gatehouse finished (`lastSubmission`), to ask again for what
 * that finish answered: the grant falls short of what the provider checks the request against. Answering again — a
 * remembered approval does so without a page — only goes round once more, `/authorize/:uid` → `/interaction/<new
 * uid>` for ever while the client waits, so the request ends with an error to the client instead.
 */
function askedAgain(details: InteractionDetails): boolean {
  return details.lastSubmission !== undefined && Object.hasOwn(details.lastSubmission, details.prompt.name);
}

export function registerConsentRoutes(app: FastifyInstance, deps: InteractionDeps): void {
  const { ctx, cookies } = deps;
  const htmlErrors = { errorFormat: 'html' as const };

  app.get('/interaction/:uid', { config: htmlErrors }, async (request, reply) => {
    const uid = parseInteractionUid(request);
    const details = await loadInteraction(deps, request, reply, uid);
    if (askedAgain(details)) {
      const { name, reasons, details: missing } = details.prompt;
      request.log.warn({ clientId: details.params.client_id, prompt: name, reasons, missing }, 'the provider asked again for what it was just given; ending the request');
      return finishInteraction(deps, request, reply, { error: 'server_error', error_description: 'The authorization could not be completed; start again from the application.' });
    }
    const client = await loadClient(deps, details);
    let subject: ConsentSubject;
    try {
      subject = consentSubjectFrom(details, client, deps.resources);
    } catch (error) {
      // The provider has validated the client and its redirect URI: a request Gatehouse cannot serve (two `resource`
      // values, one that is no route) goes back to the client as an error response (RFC 6749 §4.1.2.1, RFC 8707
      // §2), not to a page in the browser while a loopback client waits for ever.
      if (error instanceof ProtocolError && (error.code === 'invalid_target' || error.code === 'invalid_request')) {
        return finishInteraction(deps, request, reply, { error: error.code, error_description: error.description });
      }
      throw error;
    }
    const now = ctx.clock.now();
    // A client sending `prompt=consent` (OIDC Core §3.1.2.1) wants the user asked now — to review or narrow what was
    // approved before — so no decision this browser remembers answers for them (the provider, for its part, opens
    // this interaction even when the user's grant covers the request).
    const remembered = !promptRequested(details.params, 'consent');

    if (remembered && findForTarget(parseDecisions(cookies.read(request, 'denials')), targetOf(subject), now)) {
      return deniedByUser(deps, request, reply);
    }
    const approval = remembered ? findCovering(parseDecisions(cookies.read(request, 'approvals')), targetOf(subject), now) : undefined;
    // A browser signed in as a user whose grant for this client a person ended since sees the page again.
    const signedIn = details.session?.accountId;
    if (approval !== undefined && (signedIn === undefined || !(await isWithdrawn(ctx.store, signedIn, approval.clientId, approval.decidedAt ?? 0)))) {
      // Without a session the user is known only after the upstream sign-in, which checks again (finish-sign-in.ts).
      return proceedAfterApproval(deps, request, reply, details, subject, approval);
    }

    const consentState = ctx.random.token();
    const csrf = ctx.random.token();
    const record: ConsentStateRecord = { uid, ...approvedRecord(subject) };
    await writeRecord(ctx.store, consentStateRecord, consentState, record, { ttlSeconds: CONSENT_STATE_TTL_SECONDS });
    const csrfCookie: CsrfCookie = { csrf, consentState, uid, clientId: subject.clientId, redirectUri: subject.redirectUri, shownAt: now };
    // One per interaction: the cookie of another consent page open in this browser is left alone, up to a few.
    forgetOldestConsentPages(cookies, request, reply, uid);
    cookies.write(reply, { kind: 'csrf', key: uid }, csrfCookie, CONSENT_STATE_TTL_SECONDS);

    const signedInAs = await signedInUser(deps, details);
    const html = renderConsentPage({
      formAction: `/interaction/${uid}/decision`,
      clientId: client.clientId,
      clientName: client.clientName,
      logoUri: client.logoUri,
      isClientIdUrl: isClientIdUrl(client.clientId),
      trust: trustOf(deps, client),
      redirectUri: subject.redirectUri,
      resource: subject.resource.resource,
      scopes: describeScopes(subject.resource, subject.scopes),
      consentState,
      csrfToken: csrf,
      signedInAs,
      branding: ctx.config.branding,
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

  app.post('/interaction/:uid/decision', { ...formPostRoute, bodyLimit: DECISION_FORM_MAX_BYTES }, consentDecisionHandler(deps));
}
