import type { CompiledTargets } from './compiled.ts';
import { firstLine, spawnTracked, stopChild } from '../child-process.ts';

/** The oidc-provider floor (oidc-provider-floor-server.ts), running in its own process. */
export interface OidcProviderFloor {
  origin: string;
  clientId: string;
  /** One per refresh chain, each on its own grant. */
  refreshTokens: string[];
  pids(): number[];
  stop(): Promise<void>;
}

/** `nodeArgs` go to its `node` (e.g. `--cpu-prof`; it exits normally on SIGTERM, so the profile is written). */
export async function startOidcProviderFloor(compiled: CompiledTargets, chains: number, nodeArgs: string[] = []): Promise<OidcProviderFloor> {
  const child = spawnTracked(process.execPath, [...nodeArgs, compiled.script('oidc-provider-floor-server')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BENCH_CHAINS: String(chains) },
  });
  const ready = JSON.parse(await firstLine(child, 'the oidc-provider floor')) as Omit<OidcProviderFloor, 'pids' | 'stop'>;
  return { ...ready, pids: () => [child.pid!], stop: () => stopChild(child) };
}
