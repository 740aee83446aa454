import { ConfigError } from '../config/config-error.ts';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import { createUpstreamClientAuth } from './client-auth/create-client-auth.ts';
import { createProfile } from './profile.ts';

export interface UpstreamConfigCheckDeps {
  clock: Clock;
  random: Random;
  /** Process environment (`AZURE_FEDERATED_TOKEN_FILE`, …), as `start` would read it. */
  env: Record<string, string | undefined>;
}

const noNetwork: typeof globalThis.fetch = () => Promise.reject(new Error('the configuration check does not contact the identity provider'));

/**
 * What `createUpstreamClient` would refuse at start, found by building the same pieces (client authentication, with
 * its key files read and parsed, and the Entra or OIDC profile) without contacting the identity provider. `config
 * check`, `doctor` and `start` call this through the app's preflight, so none of them accepts what another refuses.
 */
export function upstreamConfigProblems(config: UpstreamConfig, deps: UpstreamConfigCheckDeps): string[] {
  const problems: string[] = [];
  const attempt = (build: () => unknown): void => {
    try {
      build();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
    }
  };
  const common = { clientId: config.clientId, clock: deps.clock, fetch: noNetwork, timeoutMs: config.timeoutMs };
  attempt(() => createUpstreamClientAuth(config.clientAuth, { ...common, random: deps.random, env: deps.env }));
  attempt(() => createProfile(config, { ...common, clientAuth: () => {} }));
  return problems;
}
