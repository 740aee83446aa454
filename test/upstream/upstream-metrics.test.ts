import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMetrics, type GatehouseMetrics } from '../../src/observability/metrics.ts';
import { startLocalIdentityProvider, type LocalIdentityProvider } from '../../src/demo/local-idp/local-identity-provider.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { UpstreamError } from '../../src/upstream/errors.ts';
import { createGatewaySide, type GatewaySide } from './support/fixture.ts';

const PUBLIC_URL = 'http://127.0.0.1:8080';

async function upstreamErrors(metrics: GatehouseMetrics, operation: string, error?: string): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((entry) => entry.name === 'gatehouse_upstream_errors_total');
  return (metric?.values ?? [])
    .filter((value) => value.labels.operation === operation && (error === undefined || value.labels.error === error))
    .reduce((sum, value) => sum + value.value, 0);
}

describe('upstream client metrics', () => {
  let idp: LocalIdentityProvider;
  const sides: GatewaySide[] = [];

  before(async () => {
    idp = await startLocalIdentityProvider({ gateway: { clientId: 'gatehouse', redirectUris: [`${PUBLIC_URL}/callback`] }, downstreamAudiences: [] });
  });
  after(async () => {
    for (const side of sides) await side.store.close();
    await idp?.close();
  });

  async function gateway(metrics: GatehouseMetrics, fetch?: typeof globalThis.fetch): Promise<GatewaySide> {
    const side = await createGatewaySide({
      publicUrl: PUBLIC_URL,
      metrics,
      ...(fetch ? { fetch } : {}),
      upstream: { type: 'oidc', issuer: idp.issuer, clientId: 'gatehouse', clientAuth: { method: 'client_secret_post', clientSecret: 'not-the-right-one' } },
    });
    sides.push(side);
    return side;
  }

  /** Starts a sign-in and returns a callback URL builder carrying its state, plus the browser's state cookie. */
  async function startSignIn(side: GatewaySide) {
    const started = await side.client.beginSignIn({ interactionId: `interaction-${sides.length}-${Math.random()}` });
    const state = new URL(started.authorizationUrl).searchParams.get('state') ?? '';
    const callback = (params: Record<string, string>) => new URL(`${PUBLIC_URL}/callback?${new URLSearchParams({ state, ...params })}`);
    return { callback, stateCookie: started.stateCookie };
  }

  it('counts every failed discovery attempt as unreachable', async () => {
    const metrics = createMetrics({ clock: systemClock });
    let attempts = 0;
    const down: typeof globalThis.fetch = async (input, init) => {
      if (String(input).includes('/.well-known/')) {
        attempts += 1;
        throw new TypeError('fetch failed');
      }
      return fetch(input, init);
    };
    const side = await gateway(metrics, down);
    await assert.rejects(side.client.checkHealth(), (error: unknown) => error instanceof UpstreamError && error.code === 'temporarily_unavailable');
    assert.ok(attempts > 0);
    assert.equal(await upstreamErrors(metrics, 'discovery', 'unreachable'), attempts);
    assert.equal(await upstreamErrors(metrics, 'sign-in'), 0);
  });

  it('counts an error the IdP sent back to the callback under its OAuth code, and an unknown one as other_oauth_error', async () => {
    const metrics = createMetrics({ clock: systemClock });
    const side = await gateway(metrics);
    const unavailable = await startSignIn(side);
    await assert.rejects(side.client.completeSignIn({ callbackUrl: unavailable.callback({ error: 'temporarily_unavailable', iss: idp.issuer }), stateCookie: unavailable.stateCookie }));
    assert.equal(await upstreamErrors(metrics, 'sign-in', 'temporarily_unavailable'), 1);

    const odd = await startSignIn(side);
    await assert.rejects(side.client.completeSignIn({ callbackUrl: odd.callback({ error: 'made_up_error_<script>', iss: idp.issuer }), stateCookie: odd.stateCookie }));
    assert.equal(await upstreamErrors(metrics, 'sign-in', 'other_oauth_error'), 1, 'label values stay bounded');
    assert.equal(await upstreamErrors(metrics, 'discovery'), 0, 'discovery succeeded');
  });

  it('counts a refused code exchange under the error the IdP answered with', async () => {
    const metrics = createMetrics({ clock: systemClock });
    const side = await gateway(metrics);
    const signIn = await startSignIn(side);
    const error = await side.client
      .completeSignIn({ callbackUrl: signIn.callback({ code: 'not-a-real-code', iss: idp.issuer }), stateCookie: signIn.stateCookie })
      .then(() => undefined, (reason: unknown) => reason);
    assert.ok(error instanceof UpstreamError, 'the sign-in failed');
    assert.equal(typeof error.upstreamError, 'string', 'the IdP answered with an OAuth error');
    assert.equal(await upstreamErrors(metrics, 'sign-in', error.upstreamError), 1);
  });

  it('does not count a user who cancels at the IdP, a response that fails validation, nor a callback without state', async () => {
    const metrics = createMetrics({ clock: systemClock });
    const side = await gateway(metrics);
    const cancelled = await startSignIn(side);
    await assert.rejects(
      side.client.completeSignIn({ callbackUrl: cancelled.callback({ error: 'access_denied', iss: idp.issuer }), stateCookie: cancelled.stateCookie }),
      (error: unknown) => error instanceof UpstreamError && error.code === 'access_denied',
    );
    const mixedUp = await startSignIn(side);
    await assert.rejects(
      side.client.completeSignIn({ callbackUrl: mixedUp.callback({ code: 'x', iss: 'https://attacker.example' }), stateCookie: mixedUp.stateCookie }),
      (error: unknown) => error instanceof UpstreamError && error.code === 'access_denied',
    );
    // An IdP error from another issuer (RFC 9207 mix-up) fails validation: not this IdP's failure either.
    const foreignError = await startSignIn(side);
    await assert.rejects(
      side.client.completeSignIn({ callbackUrl: foreignError.callback({ error: 'temporarily_unavailable', iss: 'https://attacker.example' }), stateCookie: foreignError.stateCookie }),
      (error: unknown) => error instanceof UpstreamError && error.code === 'access_denied',
    );
    await assert.rejects(side.client.completeSignIn({ callbackUrl: new URL(`${PUBLIC_URL}/callback?code=x`), stateCookie: undefined }));
    assert.equal(await upstreamErrors(metrics, 'sign-in'), 0);
  });
});
