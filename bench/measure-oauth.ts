import { runLoad } from './load.ts';
import { laterWarmupSeconds } from './measure-scenario.ts';
import { obtainRefreshToken, registerClient, registrationBody } from './oauth/sign-in.ts';
import { runRefreshLoad, type RefreshChain } from './oauth/refresh-load.ts';
import { cpuMicros } from './process-stats.ts';
import type { BenchSettings } from './settings.ts';
import { spread, type Spread } from './stats.ts';
import type { CompiledTargets } from './targets/compiled.ts';
import type { GatehouseTarget } from './targets/gatehouse.ts';
import { startOidcProviderFloor } from './targets/oidc-provider-floor.ts';
import { CookieBrowser } from '../test/upstream/support/cookie-browser.ts';

/**
 * The OAuth endpoints of the production-started Gatehouse, on its SQLite store: RFC 7591 registrations
 * (16 connections, as fast as possible) and refresh-token grants (8 concurrent chains, each on a grant obtained
 * through a real authorization: consent page, the upstream IdP's sign-in form, callback, code exchange). The same
 * loads, in the same repetitions, reach the oidc-provider floor: the library Gatehouse's authorization server is
 * built on, alone, with a Map for a store — what these endpoints cannot beat while that library serves them.
 */
export interface OAuthRates {
  registrationsPerSecond: Spread;
  registrationCpuMicros: Spread;
  refreshesPerSecond: Spread;
  refreshCpuMicros: Spread;
}

export interface OAuthFigures extends OAuthRates {
  /** The oidc-provider floor's figures under the same loads. */
  floor: OAuthRates;
  failures: number;
}

const CHAINS = 8;

interface OAuthEndpoint {
  origin: string;
  chains: RefreshChain[];
  pids(): number[];
}

interface Samples {
  registrations: { rps: number[]; cpu: number[] };
  refreshes: { rps: number[]; cpu: number[] };
}

export async function measureOAuth(gatehouse: GatehouseTarget, compiled: CompiledTargets, settings: BenchSettings): Promise<OAuthFigures> {
  const log = (text: string) => process.stderr.write(`oauth: ${text}\n`);
  let failures = 0;

  log(`obtaining ${CHAINS} grants through consent and the upstream sign-in`);
  const clientId = await registerClient(gatehouse.origin);
  const browser = new CookieBrowser();
  const chains: RefreshChain[] = [];
  for (let i = 0; i < CHAINS; i++) {
    chains.push({ clientId, refreshToken: await obtainRefreshToken(gatehouse.origin, clientId, `${gatehouse.origin}/canned`, browser) });
  }
  const floor = await startOidcProviderFloor(compiled, CHAINS);
  try {
    const endpoints: Array<[OAuthEndpoint, Samples]> = [
      [{ origin: gatehouse.origin, chains, pids: () => gatehouse.pids() }, emptySamples()],
      [{ origin: floor.origin, chains: floor.refreshTokens.map((refreshToken) => ({ clientId: floor.clientId, refreshToken })), pids: () => floor.pids() }, emptySamples()],
    ];
    // The OAuth code paths have not run yet: each endpoint first gets an untimed run of both loads, as long as a
    // later scenario's warm-up.
    const warmupSeconds = laterWarmupSeconds(settings);
    for (const [endpoint] of endpoints) {
      failures += (await registrations(endpoint, warmupSeconds)).failures;
      failures += (await refreshes(endpoint, warmupSeconds)).failures;
    }
    for (let rep = 0; rep < settings.reps; rep++) {
      log(`registrations and refresh grants, Gatehouse and the oidc-provider floor, repetition ${rep + 1} of ${settings.reps}`);
      for (const [endpoint, samples] of endpoints) {
        const registered = await registrations(endpoint, settings.seconds);
        samples.registrations.rps.push(registered.perSecond);
        samples.registrations.cpu.push(registered.cpuMicros);
        failures += registered.failures;
      }
      for (const [endpoint, samples] of endpoints) {
        const refreshed = await refreshes(endpoint, settings.seconds);
        samples.refreshes.rps.push(refreshed.perSecond);
        samples.refreshes.cpu.push(refreshed.cpuMicros);
        failures += refreshed.failures;
      }
    }
    const [[, ours], [, theirs]] = endpoints as [[OAuthEndpoint, Samples], [OAuthEndpoint, Samples]];
    return { ...rates(ours), floor: rates(theirs), failures };
  } finally {
    await floor.stop();
  }
}

function emptySamples(): Samples {
  return { registrations: { rps: [], cpu: [] }, refreshes: { rps: [], cpu: [] } };
}

function rates(samples: Samples): OAuthRates {
  return {
    registrationsPerSecond: spread(samples.registrations.rps),
    registrationCpuMicros: spread(samples.registrations.cpu),
    refreshesPerSecond: spread(samples.refreshes.rps),
    refreshCpuMicros: spread(samples.refreshes.cpu),
  };
}

async function registrations(endpoint: OAuthEndpoint, seconds: number): Promise<{ perSecond: number; cpuMicros: number; failures: number }> {
  const before = cpuMicros(endpoint.pids());
  const registered = await runLoad({
    url: `${endpoint.origin}/register`,
    headers: { 'content-type': 'application/json' },
    body: registrationBody,
    connections: 16,
    durationSeconds: seconds,
  });
  const calls = Math.max(1, registered.total + registered.failures);
  return { perSecond: registered.requestsPerSecond, cpuMicros: (cpuMicros(endpoint.pids()) - before) / calls, failures: registered.failures };
}

async function refreshes(endpoint: OAuthEndpoint, seconds: number): Promise<{ perSecond: number; cpuMicros: number; failures: number }> {
  const before = cpuMicros(endpoint.pids());
  const refreshed = await runRefreshLoad(endpoint.origin, endpoint.chains, seconds);
  // Every refresh rotates its chain's token: a failed one ends the chain, and the next runs could not continue.
  if (refreshed.failures > 0) throw new Error(`a refresh-token grant failed at ${endpoint.origin}: the chains cannot continue`);
  const calls = Math.max(1, refreshed.total + refreshed.failures);
  return { perSecond: refreshed.perSecond, cpuMicros: (cpuMicros(endpoint.pids()) - before) / calls, failures: refreshed.failures };
}
