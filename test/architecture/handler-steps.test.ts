import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { InteractionDetails } from 'oidc-provider';
import {
  checkConsentBinding,
  checkConsentCsrf,
  checkFormOrigin,
  consentDecisionSteps,
  consumeConsentState,
  parseDecisionForm,
  type ConsentDecision,
} from '../../src/authorization/consent-decision.ts';
import type { ConsentSubject } from '../../src/authorization/consent-request.ts';
import { idJagSteps } from '../../src/authorization/grants/id-jag.ts';
import { workloadSteps } from '../../src/authorization/grants/workload-identity.ts';
import { consumeSignIn, signedInSteps, type SignedInContinuation } from '../../src/authorization/finish-sign-in.ts';
import type { InteractionDeps } from '../../src/authorization/interaction-deps.ts';
import type { ConsentStateRecord, CsrfCookie } from '../../src/authorization/interaction-state.ts';
import {
  handOverConsoleSignIn,
  takeStateCookie,
  upstreamCallbackSteps,
  type UpstreamCallback,
} from '../../src/authorization/upstream-callback.ts';
import { jsonRpcCodes, ProtocolError, type ErrorCode } from '../../src/errors/protocol-error.ts';
import { consentApprovedRecord, consentStateRecord, interactionSignedInRecord } from '../../src/records/interaction.ts';
import { backendBase } from '../../src/proxy/backend-path.ts';
import type { BackendResponse } from '../../src/proxy/backend-client.ts';
import type { McpExchange } from '../../src/proxy/exchange.ts';
import { capRequestBody, checkContentLength, confineBackendPath, httpRouteSteps } from '../../src/proxy/http-route.ts';
import { legacySseMessageSteps, legacySseStreamSteps, requireBackendStream, requireLegacySessionOwner } from '../../src/proxy/legacy-sse.ts';
import { refuseNonMcpAnswer, streamableHttpSteps } from '../../src/proxy/streamable-http.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { runSteps, type HandlerStep } from '../../src/server/handler-steps.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { writeRecord } from '../../src/store/record-access.ts';
import type { CompletedSignIn } from '../../src/upstream/types.ts';

/**
 * Security-relevant handlers are lists of named steps (src/server/handler-steps.ts). (a) Each README table names
 * exactly the steps of its list, in order, so the docs cannot drift from the code; (b) single steps are tested on
 * their own: given a context they must refuse, they throw the expected ProtocolError; given one they must pass,
 * they fill in the context for the steps after them.
 */

const root = join(import.meta.dirname, '..', '..');

/** The step names of the table under the heading that names `list` in backticks. */
function tableSteps(readme: string, list: string): string[] {
  const lines = readFileSync(join(root, readme), 'utf8').split('\n');
  const heading = lines.findIndex((line) => /^#{2,6} /.test(line) && line.includes(`\`${list}\``));
  assert.notEqual(heading, -1, `${readme} has no heading naming \`${list}\``);
  const rows: string[] = [];
  for (const line of lines.slice(heading + 1)) {
    if (/^#{1,6} /.test(line)) break;
    if (line.startsWith('|')) rows.push(line);
    else if (rows.length > 0) break;
  }
  // Header row and separator first.
  return rows.slice(2).map((row) => {
    const name = /^\|\s*`([A-Za-z]+)`\s*\|/.exec(row)?.[1];
    assert.ok(name, `${readme}, table of ${list}: the first cell of "${row}" is not a step name in backticks`);
    return name;
  });
}

const documented: { readme: string; list: string; steps: readonly HandlerStep<never>[] }[] = [
  { readme: 'src/proxy/README.md', list: 'streamableHttpSteps', steps: streamableHttpSteps },
  { readme: 'src/proxy/README.md', list: 'legacySseStreamSteps', steps: legacySseStreamSteps },
  { readme: 'src/proxy/README.md', list: 'legacySseMessageSteps', steps: legacySseMessageSteps },
  { readme: 'src/proxy/README.md', list: 'httpRouteSteps', steps: httpRouteSteps },
  { readme: 'src/authorization/README.md', list: 'consentDecisionSteps', steps: consentDecisionSteps },
  { readme: 'src/authorization/README.md', list: 'upstreamCallbackSteps', steps: upstreamCallbackSteps },
  { readme: 'src/authorization/README.md', list: 'signedInSteps', steps: signedInSteps },
  { readme: 'src/authorization/README.md', list: 'idJagSteps', steps: idJagSteps },
  { readme: 'src/authorization/README.md', list: 'workloadSteps', steps: workloadSteps },
];

describe('README tables of handler steps', () => {
  for (const { readme, list, steps } of documented) {
    it(`${readme} lists exactly the steps of ${list}, in order`, () => {
      const names = steps.map((step) => step.name);
      assert.ok(names.every((name) => /^[a-z][A-Za-z]+$/.test(name)), `${list} has an unnamed step: ${names.join(', ')}`);
      assert.deepEqual(tableSteps(readme, list), names);
    });
  }
});

describe('runSteps', () => {
  it('stops after a step that answered the request', async () => {
    const ran: string[] = [];
    const answers: HandlerStep<{ answered?: boolean }> = (context) => {
      ran.push('answers');
      context.answered = true;
    };
    await runSteps([answers, () => void ran.push('never')], {});
    assert.deepEqual(ran, ['answers']);
  });
});

/** Runs a step and returns the ProtocolError it threw (the test fails when it throws nothing or something else). */
async function refusal(step: () => unknown): Promise<ProtocolError> {
  try {
    await step();
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
    return error;
  }
  assert.fail('the step passed a context it should have refused');
}

function assertRefused(error: ProtocolError, code: ErrorCode, status: number): void {
  assert.equal(error.code, code);
  assert.equal(error.status, status);
}

describe('proxy steps', () => {
  const limit = 1024;
  const exchange = (request: { url?: string; method?: string; headers?: Record<string, string>; query?: unknown; body?: unknown }, response?: BackendResponse) =>
    ({
      runtime: { ctx: { config: { server: { bodyLimitBytes: limit } } } },
      state: {
        route: { path: '/api', backend: 'http://api.test/v1', timeouts: { requestBodyMs: 60_000 } },
        backendBase: backendBase('http://api.test/v1'),
      },
      request: { url: '/api', method: 'GET', headers: {}, query: {}, ...request },
      draft: { bytesIn: 0 },
      denied: new Set(),
      response,
    }) as unknown as McpExchange;
  const answer = (statusCode: number, contentType: string): BackendResponse => ({
    statusCode,
    headers: { 'content-type': contentType },
    body: Readable.from([]),
  }) as unknown as BackendResponse;

  it('confineBackendPath refuses a path that leaves the route (400) and confines one that does not', async () => {
    assertRefused(await refusal(() => confineBackendPath(exchange({ url: '/api/%2e%2e/admin' }))), 'invalid_request', 400);
    const passed = exchange({ url: '/api/users/7?fields=name' });
    confineBackendPath(passed);
    assert.equal(passed.backendUrl, 'http://api.test/v1/users/7?fields=name');
  });

  it('checkContentLength refuses a declared length over the limit (413) before reading anything', async () => {
    const declared = exchange({ method: 'POST', headers: { 'content-length': String(limit + 1) } });
    assertRefused(await refusal(() => checkContentLength(declared)), 'payload_too_large', 413);
    checkContentLength(exchange({ method: 'POST', headers: { 'content-length': String(limit) } }));
  });

  it('capRequestBody passes the declared length on and fails the upload past the limit', async () => {
    const body = Readable.from([Buffer.alloc(limit), Buffer.alloc(1)]);
    const upload = exchange({ method: 'PUT', headers: { 'content-length': '10' }, body });
    upload.backendHeaders = {};
    capRequestBody(upload);
    assert.equal(upload.backendHeaders['content-length'], '10');
    assert.ok(upload.upload);
    const consumed = await refusal(async () => {
      for await (const chunk of upload.upload!) void chunk;
    });
    assertRefused(consumed, 'payload_too_large', 413);
    upload.upload.destroy();
  });

  it('requireLegacySessionOwner refuses a message without a session id (404, -32001)', async () => {
    const error = await refusal(() => requireLegacySessionOwner(exchange({ method: 'POST', query: {} })));
    assertRefused(error, 'not_found', 404);
    assert.equal(error.jsonRpcCode, jsonRpcCodes.sessionNotFound);
  });

  it('requireBackendStream refuses a backend that does not open an SSE stream (502)', async () => {
    assertRefused(await refusal(() => requireBackendStream(exchange({}, answer(200, 'text/html')))), 'bad_gateway', 502);
    requireBackendStream(exchange({}, answer(200, 'text/event-stream')));
  });

  /** An authorized exchange whose backend step-up check (backend-step-up.ts) answers `stepUp`. */
  const authorizedExchange = (request: Parameters<typeof exchange>[0], response: BackendResponse, stepUp?: ProtocolError): McpExchange => {
    const base = exchange(request, response);
    return Object.assign(base, {
      call: { claims: { sub: 'user', grantId: 'grant-1' } },
      runtime: { ...base.runtime, backendStepUp: { answer: async () => stepUp } },
    }) as unknown as McpExchange;
  };

  it('refuseNonMcpAnswer refuses a backend that refused the identity, or answered a POST with HTML (502)', async () => {
    assertRefused(await refusal(() => refuseNonMcpAnswer(authorizedExchange({}, answer(401, 'application/json')))), 'bad_gateway', 502);
    const post = authorizedExchange({ method: 'POST' }, answer(200, 'text/html'));
    post.post = { raw: Buffer.from('{}') } as McpExchange['post'];
    assertRefused(await refusal(() => refuseNonMcpAnswer(post)), 'bad_gateway', 502);
    await refuseNonMcpAnswer(authorizedExchange({ method: 'POST' }, answer(200, 'application/json')));
  });

  it('refuseNonMcpAnswer turns a backend\'s step-up (401 insufficient_claims with evidence) into the gateway\'s own 401', async () => {
    const challenge = new ProtocolError('invalid_token', 'sign in again', { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
    assertRefused(await refusal(() => refuseNonMcpAnswer(authorizedExchange({}, answer(401, 'application/json'), challenge))), 'invalid_token', 401);
    // A 403 is never a step-up: the backend refused the gateway's identity.
    assertRefused(await refusal(() => refuseNonMcpAnswer(authorizedExchange({}, answer(403, 'application/json'), challenge))), 'bad_gateway', 502);
  });
});

describe('consent decision steps', () => {
  const publicUrl = 'https://gatehouse.test';
  const csrf: CsrfCookie = { csrf: 'token-1', consentState: 'state-1', uid: 'uid-1', clientId: 'client-1', redirectUri: 'https://app.test/cb' };
  const deps = (cookies: Record<string, unknown> = {}, store?: unknown) =>
    ({
      ctx: { publicUrl, store },
      // One cookie per kind, or per kind and key (the consent form's CSRF cookie is one per interaction).
      cookies: { read: (_request: unknown, name: string | { kind: string; key: string }) => cookies[typeof name === 'string' ? name : `${name.kind}:${name.key}`] },
    }) as unknown as InteractionDeps;
  const decision = (headers: Record<string, string>, body: unknown, cookies?: Record<string, unknown>, store?: unknown): ConsentDecision => ({
    deps: deps(cookies, store),
    request: { headers, body } as unknown as FastifyRequest,
    reply: {} as FastifyReply,
    uid: 'uid-1',
  });
  const form = { consent_state: 'state-1', csrf_token: 'token-1', decision: 'approve' };

  it('checkFormOrigin refuses a form posted from another site (403) and passes our own', async () => {
    assertRefused(await refusal(() => checkFormOrigin(decision({ origin: 'https://evil.test' }, form))), 'access_denied', 403);
    assertRefused(await refusal(() => checkFormOrigin(decision({ 'sec-fetch-site': 'cross-site' }, form))), 'access_denied', 403);
    checkFormOrigin(decision({ origin: publicUrl }, form));
  });

  it('parseDecisionForm refuses an unknown field (400) and fills in the form', async () => {
    assertRefused(await refusal(() => parseDecisionForm(decision({}, { ...form, scope: 'admin' }))), 'invalid_request', 400);
    const passed = decision({}, form);
    parseDecisionForm(passed);
    assert.deepEqual(passed.form, form);
  });

  it('checkConsentCsrf refuses a form without this browser\'s cookie, or with another token or interaction (403)', async () => {
    const parsed = (cookies: Record<string, unknown>, uid = 'uid-1') => {
      const step = decision({}, form, cookies);
      parseDecisionForm(step);
      step.uid = uid;
      return step;
    };
    assertRefused(await refusal(() => checkConsentCsrf(parsed({}))), 'access_denied', 403);
    assertRefused(await refusal(() => checkConsentCsrf(parsed({ 'csrf:uid-1': { ...csrf, csrf: 'token-2' } }))), 'access_denied', 403);
    assertRefused(await refusal(() => checkConsentCsrf(parsed({ 'csrf:uid-1': csrf }, 'uid-2'))), 'access_denied', 403);
    assertRefused(await refusal(() => checkConsentCsrf(parsed({ 'csrf:uid-2': csrf }, 'uid-2'))), 'access_denied', 403);
    const passed = parsed({ 'csrf:uid-1': csrf });
    checkConsentCsrf(passed);
    assert.deepEqual(passed.csrfCookie, csrf);
  });

  it('consumeConsentState takes the consent state once: a replayed form is refused (400)', async () => {
    const store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    const shown: ConsentStateRecord = { uid: 'uid-1', clientId: 'client-1', redirectUri: 'https://app.test/cb', resource: 'https://gatehouse.test/mcp', scopes: [], oidcScopes: [] };
    await writeRecord(store, consentStateRecord, 'state-1', shown, { ttlSeconds: 60 });
    const first = decision({}, form, {}, store);
    parseDecisionForm(first);
    await consumeConsentState(first);
    assert.deepEqual(first.shownFor, shown);
    const replay = decision({}, form, {}, store);
    parseDecisionForm(replay);
    assertRefused(await refusal(() => consumeConsentState(replay)), 'invalid_request', 400);
    await store.close();
  });

  it('checkConsentBinding refuses a form shown for another redirect URI or resource than the live request (403)', async () => {
    const subject = { clientId: 'client-1', redirectUri: 'https://app.test/cb', resourceIndicator: 'https://gatehouse.test/mcp' } as ConsentSubject;
    const shownFor: ConsentStateRecord = { uid: 'uid-1', clientId: 'client-1', redirectUri: 'https://app.test/cb', resource: 'https://gatehouse.test/mcp', scopes: [], oidcScopes: [] };
    const bound = (changes: Partial<ConsentStateRecord>, cookie = csrf): ConsentDecision => ({
      ...decision({}, form),
      csrfCookie: cookie,
      shownFor: { ...shownFor, ...changes },
      subject,
    });
    assertRefused(await refusal(() => checkConsentBinding(bound({ redirectUri: 'https://evil.test/cb' }))), 'access_denied', 403);
    assertRefused(await refusal(() => checkConsentBinding(bound({ resource: 'https://gatehouse.test/other' }))), 'access_denied', 403);
    assertRefused(await refusal(() => checkConsentBinding(bound({}, { ...csrf, clientId: 'client-2' }))), 'access_denied', 403);
    checkConsentBinding(bound({}));
  });
});

describe('upstream callback and sign-in steps', () => {
  const completed = (interactionId: string) => ({ interactionId, identity: { subject: 'alice' } }) as unknown as CompletedSignIn;

  it('takeStateCookie reads this browser\'s state cookie and leaves it for the browser\'s other sign-ins', () => {
    const cleared: string[] = [];
    const callback: UpstreamCallback = {
      deps: { cookies: { readRaw: () => 'browser-half', clear: (_reply: unknown, kind: string) => void cleared.push(kind) } } as unknown as InteractionDeps,
      request: {} as FastifyRequest,
      reply: {} as FastifyReply,
    };
    takeStateCookie(callback);
    assert.equal(callback.stateCookie, 'browser-half');
    assert.deepEqual(cleared, []);
  });

  it('handOverConsoleSignIn refuses a console sign-in when no console is mounted (404), and leaves others alone', async () => {
    const callback = (interactionId: string): UpstreamCallback => ({
      deps: { consoleSignIn: undefined } as unknown as InteractionDeps,
      request: {} as FastifyRequest,
      reply: {} as FastifyReply,
      completed: completed(interactionId),
    });
    assertRefused(await refusal(() => handOverConsoleSignIn(callback('console:n1'))), 'not_found', 404);
    const interaction = callback('uid-1');
    await handOverConsoleSignIn(interaction);
    assert.equal(interaction.answered, undefined);
  });

  it('consumeSignIn refuses an approval for another client than the interaction (400), and a second use', async () => {
    const store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    const approved = { clientId: 'client-1', redirectUri: 'https://app.test/cb', resource: 'https://gatehouse.test/mcp', scopes: [], oidcScopes: [] };
    const continuation = (clientId: string): SignedInContinuation => ({
      deps: { ctx: { store } } as unknown as InteractionDeps,
      request: {} as FastifyRequest,
      reply: {} as FastifyReply,
      uid: 'uid-1',
      details: { params: { client_id: clientId } } as unknown as InteractionDetails,
    });
    const seed = async () => {
      await writeRecord(store, interactionSignedInRecord, 'uid-1', { subject: 'alice' }, { ttlSeconds: 60 });
      await writeRecord(store, consentApprovedRecord, 'uid-1', approved, { ttlSeconds: 60 });
    };
    await seed();
    assertRefused(await refusal(() => consumeSignIn(continuation('client-2'))), 'invalid_request', 400);
    await seed();
    const passed = continuation('client-1');
    await consumeSignIn(passed);
    assert.deepEqual(passed.signedIn, { subject: 'alice', approved });
    assertRefused(await refusal(() => consumeSignIn(continuation('client-1'))), 'invalid_request', 400);
    await store.close();
  });
});
