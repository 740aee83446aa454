import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import { constantTimeEqual } from '../../keys/hashing.ts';
import { descriptionOf } from './entra-errors.ts';
import { renderLoginPage } from './login-page.ts';
import { MFA_AMR, oneTimeCodeFor, requestsStepUp } from './step-up.ts';
import type { LocalUser } from './users.ts';

/**
 * DEVELOPMENT ONLY — the interaction pages oidc-provider sends the browser to: sign-in (username/password form) and
 * consent, which is automatic for the gateway client (as after an admin consent in Entra) and refused for any other.
 */
const MAX_FORM_BYTES = 8 * 1024;

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > MAX_FORM_BYTES) throw new Error('form too large');
  }
  return new URLSearchParams(text);
}

/** No `form-action`: browsers apply it to the redirect chain after the POST, which ends at the gateway's callback. */
function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    'x-frame-options': 'DENY',
  });
  res.end(html);
}

export function createInteractionHandler(deps: {
  provider: Provider;
  /** Clients whose sign-ins are consented automatically: the gateway and the demo's SSO clients. */
  clientIds: ReadonlySet<string>;
  users: () => LocalUser[];
  /** Key of the demo's one-time codes (step-up.ts). */
  oneTimeCodeSecret: string;
}) {
  const { provider, clientIds } = deps;

  const findByUsername = (username: string) =>
    deps.users().find((user) => user.username.toLowerCase() === username.toLowerCase() || user.email.toLowerCase() === username.toLowerCase());

  async function autoConsent(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    const clientId = String(details.params.client_id);
    if (!clientIds.has(clientId) || !details.session) {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'only the gateway and the demo clients may be consented here' });
      return;
    }
    const grant = details.grantId
      ? ((await provider.Grant.find(details.grantId)) ?? new provider.Grant({ accountId: details.session.accountId, clientId }))
      : new provider.Grant({ accountId: details.session.accountId, clientId });
    const missing = details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(' '));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  async function show(req: IncomingMessage, res: ServerResponse, uid: string, error?: string, status = 200): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === 'consent') return autoConsent(req, res);
    const client = await provider.Client.find(String(details.params.client_id));
    const loginHint = typeof details.params.login_hint === 'string' ? details.params.login_hint : undefined;
    const stepUp = requestsStepUp(details.params.claims);
    sendHtml(res, status, renderLoginPage({
      uid,
      ...(stepUp ? { oneTimeCode: oneTimeCodeFor(deps.oneTimeCodeSecret, uid) } : {}),
      clientName: client?.clientName ?? String(details.params.client_id),
      ...(loginHint ? { loginHint } : {}),
      ...(error ? { error } : {}),
      users: deps.users().map(({ username, name }) => ({ username, name })),
    }));
  }

  async function submitLogin(req: IncomingMessage, res: ServerResponse, uid: string): Promise<void> {
    const form = await readForm(req);
    if (form.get('action') === 'cancel') {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: descriptionOf(65004) }, { mergeWithLastSubmission: false });
      return;
    }
    const user = findByUsername(form.get('username') ?? '');
    // Compare even when the user is unknown so timing does not reveal which usernames exist.
    const passwordOk = constantTimeEqual(form.get('password') ?? '', user?.password ?? '\u0000no-user');
    if (!user || !passwordOk) return show(req, res, uid, 'The username or password is incorrect.', 401);
    const details = await provider.interactionDetails(req, res);
    if (!requestsStepUp(details.params.claims)) {
      await provider.interactionFinished(req, res, { login: { accountId: user.id } }, { mergeWithLastSubmission: false });
      return;
    }
    // The claims challenge asked for a second factor: the one-time code of this sign-in, or the form again.
    if (!constantTimeEqual(form.get('otp') ?? '', oneTimeCodeFor(deps.oneTimeCodeSecret, uid))) {
      return show(req, res, uid, 'The verification code is incorrect.', 401);
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.id, amr: MFA_AMR } }, { mergeWithLastSubmission: false });
  }

  /** Handles `/interaction/:uid` (GET) and `/interaction/:uid/login` (POST); false if the path is not ours. */
  return async function handleInteraction(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(path);
    if (!match?.[1]) return false;
    const uid = match[1];
    try {
      if (req.method === 'GET' && !match[2]) await show(req, res, uid);
      else if (req.method === 'POST' && match[2]) await submitLogin(req, res, uid);
      else sendHtml(res, 405, '<!doctype html><title>Method not allowed</title><p>Method not allowed.</p>');
    } catch {
      if (!res.headersSent) sendHtml(res, 400, '<!doctype html><title>Sign-in expired</title><p>This sign-in has expired or is not valid in this browser. Start again from the application.</p>');
    }
    return true;
  };
}
