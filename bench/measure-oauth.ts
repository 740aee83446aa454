import { runLoad } from './load.ts';
import { obtainRefreshToken, registerClient, registrationBody } from './oauth/sign-in.ts';
import { runRefreshLoad, type RefreshChain } from './oauth/refresh-load.ts';
import { cpuMicros } from './process-stats.ts';
import type { BenchSettings } from './settings.ts';
import { spread, type Spread } from './stats.ts';
import type { GatehouseTarget } from './targets/gatehouse.ts';
import { CookieBrowser } from '../test/upstream/support/cookie-browser.ts';

/**
 * The OAuth endpoints of the production-started Gatehouse, on its SQLite store: RFC 7591 registrations
 * (16 connections, as fast as possible) and refresh-token grants (8 concurrent chains, each on a grant obtained
 * through a real authorization: consent page, the upstream IdP's sign-in form, callback, code exchange).
 */
export interface OAuthFigures {
  registrationsPerSecond: Spread;
  registrationCpuMicros: Spread;
  refreshesPerSecond: Spread;
  refreshCpuMicros: Spread;
  failures: number;
}

const CHAINS = 8;

export async function measureOAuth(gatehouse: GatehouseTarget, settings: BenchSettings): Promise<OAuthFigures> {
  const log = (text: string) => process.stderr.write(`oauth: ${text}\n`);
  const pids = gatehouse.pids();
  const registrations = { rps: [] as number[], cpu: [] as number[] };
  const refreshes = { rps: [] as number[], cpu: [] as number[] };
  let failures = 0;

  log(`obtaining ${CHAINS} grants through consent and the upstream sign-in`);
  const clientId = await registerClient(gatehouse.origin);
  const browser = new CookieBrowser();
  const chains: RefreshChain[] = [];
  for (let i = 0; i < CHAINS; i++) {
    chains.push({ clientId, refreshToken: await obtainRefreshToken(gatehouse.origin, clientId, `${gatehouse.origin}/canned`, browser) });
  }
  for (let rep = 0; rep < settings.reps; rep++) {
    log(`registrations and refresh grants, repetition ${rep + 1} of ${settings.reps}`);
    let before = cpuMicros(pids);
    const registered = await runLoad({
      url: `${gatehouse.origin}/register`,
      headers: { 'content-type': 'application/json' },
      body: registrationBody,
      connections: 16,
      durationSeconds: settings.seconds,
    });
    registrations.cpu.push((cpuMicros(pids) - before) / Math.max(1, registered.total + registered.failures));
    registrations.rps.push(registered.requestsPerSecond);
    failures += registered.failures;

    before = cpuMicros(pids);
    const refreshed = await runRefreshLoad(gatehouse.origin, chains, settings.seconds);
    refreshes.cpu.push((cpuMicros(pids) - before) / Math.max(1, refreshed.total + refreshed.failures));
    refreshes.rps.push(refreshed.perSecond);
    failures += refreshed.failures;
    if (refreshed.failures > 0) throw new Error('a refresh-token grant failed: the chains cannot continue');
  }
  return {
    registrationsPerSecond: spread(registrations.rps),
    registrationCpuMicros: spread(registrations.cpu),
    refreshesPerSecond: spread(refreshes.rps),
    refreshCpuMicros: spread(refreshes.cpu),
    failures,
  };
}
