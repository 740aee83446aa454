import type { Reauthentication } from '../upstream/types.ts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Client, InteractionDetails } from 'oidc-provider';
import { z } from 'zod';
import { ProtocolError } from '../errors/protocol-error.ts';
import { constantTimeEqual } from '../keys/hashing.ts';
import { consentApprovedRecord, consentStateRecord } from '../records/interaction.ts';
import { runSteps, type HandlerStep, type StepContext } from '../server/handler-steps.ts';
import { consumeRecord, readRecord, writeRecord } from '../store/record-access.ts';
import { upstreamTokensRecord } from '../records/upstream.ts';
import { consentSubjectFrom, type ConsentSubject } from './consent-request.ts';
import { finishWithGrant } from './finish-sign-in.ts';
import { redirectToUpstreamSignIn } from './step-up-sign-in.ts';
import { pendingStepUp } from '../records/step-up.ts';
import { finishInteraction, loadInteraction, parseInteractionUid, type InteractionDeps } from './interaction-deps.ts';
import {
  CONSENT_STATE_TTL_SECONDS,
  type ApprovedConsentRecord,
  type ConsentStateRecord,
  type CsrfCookie,
} from './interaction-state.ts';
import { DENIAL_MEMORY_SECONDS, parseDecisions, remember, type RememberedDecision } from './remembered-decisions.ts';
import { isSameOriginRequest } from './request-origin.ts';

/**
 * POST /interaction/:uid/decision — the user's Approve or Deny on the consent page, and what follows a decision
 * (also one the browser remembered, consent-routes.ts): Deny → `access_denied` to the client; Approve → the grant,
 * or the upstream sign-in first.
 *
 * The handler is `consentDecisionSteps`, run in order over one ConsentDecision (../server/handler-steps.ts); the
 * README table of src/authorization is checked against the list.
 */

/** The form has three short fields; anything larger is not our form (Fastify counts the bytes read, chunked too). */
export const DECISION_FORM_MAX_BYTES = 4 * 1024;

const decisionForm = z
  .object({
    consent_state: z.string().min(1).max(200),
    csrf_token: z.string().min(1).max(200),
    decision: z.enum(['approve', 'deny']),
  })
  .strict();

export interface ConsentDecision extends StepContext {
  readonly deps: InteractionDeps;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  /** Set by readInteractionUid. */
  uid?: string;
  /** Set by parseDecisionForm. */
  form?: z.infer<typeof decisionForm>;
  /** Set by checkConsentCsrf: the double-submit cookie, matching the form. */
  csrfCookie?: CsrfCookie;
  /** Set by consumeConsentState: what the form was shown for. */
  shownFor?: ConsentStateRecord;
  /** Set by checkSameBrowser: the provider's interaction, found through its own cookie. */
  details?: InteractionDetails;
  /** Set by loadConsentSubject: what the live authorization request asks for. */
  subject?: ConsentSubject;
}

/** A field an earlier step fills in; its absence is a programming error (a step list out of order), not bad input. */
function filled<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`step order: the consent decision has no ${name} yet`);
  return value;
}

/** The `:uid` must be one oidc-provider could have issued (404 page otherwise). */
export function readInteractionUid(decision: ConsentDecision): void {
  decision.uid = parseInteractionUid(decision.request);
}

/** A browser reporting another site as the form's origin is refused (403): the second, independent CSRF defence. */
export function checkFormOrigin(decision: ConsentDecision): void {
  if (!isSameOriginRequest(decision.request, new URL(decision.deps.ctx.publicUrl).origin)) {
    throw new ProtocolError('access_denied', 'This form was submitted from another site and was refused.');
  }
}

/** Exactly the three fields of our form (400 otherwise). */
export function parseDecisionForm(decision: ConsentDecision): void {
  const parsed = decisionForm.safeParse(decision.request.body);
  if (!parsed.success) throw new ProtocolError('invalid_request', 'The consent form is incomplete; start again from the application.');
  decision.form = parsed.data;
}

/** Double-submit CSRF: this browser's sealed cookie must carry the form's token, consent state and interaction (403). */
export function checkConsentCsrf(decision: ConsentDecision): void {
  const form = filled(decision.form, 'form');
  const uid = filled(decision.uid, 'uid');
  const cookie = decision.deps.cookies.read<CsrfCookie>(decision.request, { kind: 'csrf', key: uid });
  if (cookie === undefined) {
    throw new ProtocolError('access_denied', 'The consent form does not belong to this browser; start again from the application.', {
      detail: 'no consent cookie for the interaction in this browser',
    });
  }
  if (!constantTimeEqual(cookie.csrf, form.csrf_token) || cookie.consentState !== form.consent_state || cookie.uid !== uid) {
    // This browser loaded the same request's page again (a reload, a second tab): only the newest page's form counts.
    throw new ProtocolError('access_denied', 'This consent page was replaced by a newer one for the same request (a reload or another tab); use the newest page.', {
      detail: 'consent form superseded',
    });
  }
  decision.csrfCookie = cookie;
}

/** The server-side consent state is single use and names this interaction: a replayed or expired form is refused (400). */
export async function consumeConsentState(decision: ConsentDecision): Promise<void> {
  const record = await consumeRecord(decision.deps.ctx.store, consentStateRecord, filled(decision.form, 'form').consent_state);
  if (record === undefined || record.uid !== decision.uid) {
    throw new ProtocolError('invalid_request', 'This consent form has expired or was already used; start again from the application.');
  }
  decision.shownFor = record;
}

/** The interaction must be found through the provider's own cookie: a uid learnt elsewhere is not enough (400). */
export async function checkSameBrowser(decision: ConsentDecision): Promise<void> {
  decision.details = await loadInteraction(decision.deps, decision.request, decision.reply, filled(decision.uid, 'uid'));
}

/** The client must still be registered (400), the request must name one resource of this gateway (400 invalid_target). */
export async function loadConsentSubject(decision: ConsentDecision): Promise<void> {
  const details = filled(decision.details, 'interaction');
  decision.subject = consentSubjectFrom(details, await loadClient(decision.deps, details), decision.deps.resources);
}

/** The cookie, the server-side state and the live request must all name the same client, redirect URI and resource (403). */
export function checkConsentBinding(decision: ConsentDecision): void {
  const subject = filled(decision.subject, 'subject');
  const shownFor = filled(decision.shownFor, 'consent state');
  const bound = [filled(decision.csrfCookie, 'CSRF cookie'), shownFor].every(
    (item) => item.clientId === subject.clientId && item.redirectUri === subject.redirectUri,
  );
  if (!bound || shownFor.resource !== subject.resourceIndicator) {
    throw new ProtocolError('access_denied', 'The consent form does not match this request; start again from the application.');
  }
}

/** The form is used up (CSRF cookie cleared); the browser remembers the decision for this exact client, redirect and resource. */
export function rememberDecision(decision: ConsentDecision): void {
  const { deps, request, reply } = decision;
  const subject = filled(decision.subject, 'subject');
  const choice = filled(decision.form, 'form').decision;
  deps.cookies.clear(reply, { kind: 'csrf', key: filled(decision.uid, 'uid') });
  const now = deps.ctx.clock.now();
  request.log.info({ clientId: subject.clientId, resource: subject.resource.resource, decision: choice }, 'consent decision');
  const kind = choice === 'deny' ? 'denials' : 'approvals';
  const seconds = choice === 'deny' ? DENIAL_MEMORY_SECONDS : deps.ctx.config.authorization.consentRememberDays * 24 * 3600;
  const remembered = remember(parseDecisions(deps.cookies.read(request, kind)), decisionFor(subject, now, now + seconds * 1000), now);
  deps.cookies.write(reply, kind, remembered, seconds);
}

/** Deny → `access_denied` to the client through the provider; Approve → the grant, or the upstream sign-in first. */
export async function answerDecision(decision: ConsentDecision): Promise<void> {
  const { deps, request, reply } = decision;
  const subject = filled(decision.subject, 'subject');
  if (filled(decision.form, 'form').decision === 'deny') await deniedByUser(deps, request, reply);
  else await proceedAfterApproval(deps, request, reply, filled(decision.details, 'interaction'), subject);
  decision.answered = true;
}

/** In order; the README table of src/authorization is checked against these names. */
export const consentDecisionSteps: readonly HandlerStep<ConsentDecision>[] = [
  readInteractionUid,
  checkFormOrigin,
  parseDecisionForm,
  checkConsentCsrf,
  consumeConsentState,
  checkSameBrowser,
  loadConsentSubject,
  checkConsentBinding,
  rememberDecision,
  answerDecision,
];

export function consentDecisionHandler(deps: InteractionDeps) {
  return async function handleConsentDecision(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    await runSteps(consentDecisionSteps, { deps, request, reply });
  };
}

export async function loadClient(deps: InteractionDeps, details: InteractionDetails): Promise<Client> {
  const clientId = details.params.client_id;
  const client = typeof clientId === 'string' ? await deps.provider.Client.find(clientId) : undefined;
  if (client === undefined) throw new ProtocolError('invalid_request', 'The application is no longer registered.');
  return client;
}

export function approvedRecord(subject: ConsentSubject): ApprovedConsentRecord {
  return {
    clientId: subject.clientId,
    redirectUri: subject.redirectUri,
    resource: subject.resourceIndicator,
    scopes: subject.scopes,
    oidcScopes: subject.oidcScopes,
  };
}

function decisionFor(subject: ConsentSubject, decidedAt: number, expiresAt: number): RememberedDecision {
  return { clientId: subject.clientId, redirectUri: subject.redirectUri, resource: subject.resource.resource, scopes: subject.scopes, expiresAt, decidedAt };
}

/**
 * Approve: a signed-in user (provider session) gets the grant now, unless the IdP has since asked more of them (a
 * Conditional Access step-up, src/records/step-up.ts); otherwise the upstream sign-in comes first.
 */
export async function proceedAfterApproval(
  deps: InteractionDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  details: InteractionDetails,
  subject: ConsentSubject,
  remembered?: RememberedDecision,
): Promise<void> {
  const approved = { ...approvedRecord(subject), ...(remembered === undefined ? {} : { rememberedAt: remembered.decidedAt ?? 0 }) };
  const accountId = details.prompt.name === 'consent' ? details.session?.accountId : undefined;
  const stepUp = accountId === undefined ? undefined : await pendingStepUp(deps.ctx.store, accountId);
  // The broker acts with the user's upstream tokens: without them (their last grant ended, or they expired) the
  // session alone would issue a grant the broker can never serve, and the client's re-authorization after the
  // broker's 401 would go round the same way. The IdP sign-in stores fresh ones.
  const upstreamKept = accountId === undefined || (await readRecord(deps.ctx.store, upstreamTokensRecord, accountId, { invalid: 'absent' })) !== undefined;
  if (accountId !== undefined && stepUp === undefined && upstreamKept) {
    await finishWithGrant(deps, request, reply, details, accountId, approved);
    return;
  }
  await writeRecord(deps.ctx.store, consentApprovedRecord, details.uid, approved, { ttlSeconds: CONSENT_STATE_TTL_SECONDS });
  // A client's `login_hint` (OIDC Core §3.1.2.1) is passed on so the IdP can preselect the account.
  const loginHint = typeof details.params.login_hint === 'string' ? details.params.login_hint : undefined;
  await redirectToUpstreamSignIn(deps, reply, { interactionId: details.uid, loginHint, claims: stepUp?.claims, reauthenticate: reauthenticationAsked(details.params) });
}

/**
 * A client's demand for a fresh login (OIDC Core §3.1.2.1): `prompt=login`, or `max_age`. Gatehouse signs no one in
 * itself, so it asks the IdP the same; otherwise the IdP's own session signs the user in without a prompt and the
 * login the client demanded never happens. `max_age` is passed as given, the IdP counting from its own last login.
 */
function reauthenticationAsked(params: Record<string, unknown>): Reauthentication | undefined {
  const prompt = promptRequested(params, 'login');
  const raw = typeof params.max_age === 'number' ? String(params.max_age) : params.max_age;
  const maxAge = typeof raw === 'string' && /^\d{1,9}$/.test(raw) ? Number(raw) : undefined;
  if (!prompt && maxAge === undefined) return undefined;
  return { ...(prompt ? { prompt: 'login' as const } : {}), ...(maxAge === undefined ? {} : { maxAge }) };
}

/** Whether the request's `prompt` (OIDC Core §3.1.2.1, space-separated) asks for `value`. */
export function promptRequested(params: Record<string, unknown>, value: 'login' | 'consent'): boolean {
  return typeof params.prompt === 'string' && params.prompt.split(' ').includes(value);
}

export async function deniedByUser(deps: InteractionDeps, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  await finishInteraction(deps, request, reply, { error: 'access_denied', error_description: 'The user denied the request.' });
}
