import type { ChildProcess } from 'node:child_process';
import type { BackendUrls } from '../backends/main.ts';
import { startBackends, stopChild } from '../child-process.ts';
import { freePort } from '../../test/support/ports.ts';
import { startBenchIdentityProvider } from '../oauth/identity-provider.ts';
import { compileTargets, type CompiledTargets } from './compiled.ts';
import { createCredentials } from './credentials.ts';
import { directTarget } from './direct.ts';
import { startExpressPeer } from './express-peer.ts';
import { startGatehouse, type GatehouseTarget } from './gatehouse.ts';
import { NGINX_BINARY, startNginx } from './nginx.ts';
import { startNodeFloor } from './node-floor.ts';
import type { Target } from './target.ts';

/**
 * The backends' process and every target in front of them, each in a process of its own: direct, nginx, the
 * Express peer, the Node floor, Gatehouse (with its upstream IdP in this process). A target that cannot run here
 * (nginx not installed) is listed in `skipped` instead.
 */
export interface BenchTargets {
  urls: BackendUrls;
  backends: ChildProcess;
  targets: Target[];
  gatehouse: GatehouseTarget;
  /** The bench servers as JavaScript, for anchors a part starts on its own (the oidc-provider floor). */
  compiled: CompiledTargets;
  skipped: string[];
  stop(): Promise<void>;
}

export async function startAllTargets(dir: string, maxStreams: number): Promise<BenchTargets> {
  const compiled = compileTargets(dir);
  const { urls, child: backends } = await startBackends();
  const gatehousePort = await freePort();
  const gatehouseUrl = `http://127.0.0.1:${gatehousePort}`;
  const credentials = await createCredentials(dir, gatehouseUrl);
  const { idp, upstream } = await startBenchIdentityProvider(dir, gatehouseUrl);
  const skipped: string[] = [];
  const nginx = await startNginx(urls, dir, 2 * maxStreams + 256);
  if (!nginx) skipped.push(`nginx (${NGINX_BINARY} not installed)`);
  const gatehouse = await startGatehouse(gatehousePort, dir, urls, credentials, upstream, compiled);
  const targets = [directTarget(urls), ...(nginx ? [nginx] : []), await startExpressPeer(urls, credentials, compiled), await startNodeFloor(urls, compiled), gatehouse];
  return {
    urls,
    backends,
    targets,
    gatehouse,
    compiled,
    skipped,
    async stop() {
      for (const target of targets) await target.stop();
      await idp.close();
      await stopChild(backends);
    },
  };
}
