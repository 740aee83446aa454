import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import type { GatehouseConfig } from '../config/schema.ts';
import { listKeys } from '../keys/rotation.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';
import { createEntraProfile } from '../upstream/entra.ts';

/**
 * `gatehouse doctor`: the checks an operator runs when something is wrong, each with what to do about a failure.
 * Every check is bounded in time (an unreachable IdP or Redis must not make the doctor hang) and none prints a
 * secret: URLs are shown without credentials, keys by id.
 */
export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface DoctorCheck {
  name: 'config' | 'store' | 'upstream' | 'keys' | 'backends';
  status: CheckStatus;
  detail: string;
  /** What to do, for `warn` and `fail`. */
  fix?: string;
}

/** A current key older than this should be rotated (a routine, not an emergency). */
export const KEY_ROTATION_AGE_DAYS = 90;

/**
 * The configuration's own warnings (`loaded`: what `config check` and `start` print — an http public URL in
 * production, insecure cookies, …), then what doctor adds for a production deployment. Doctor said `ok` for a file
 * `config check` warned about.
 */
export function configWarnings(config: GatehouseConfig, publicUrl: string, loaded: readonly string[] = []): DoctorCheck {
  const notes: string[] = [...loaded];
  const fixes: string[] = loaded.length > 0 ? ['change the settings the warnings name in the configuration file'] : [];
  if (config.mode === 'production') {
    if (config.admin.users.length === 0 && config.admin.groups.length === 0) {
      notes.push('no admin users or groups');
      fixes.push('set admin.users or admin.groups to use /admin');
    }
    if (config.admin.metricsToken === undefined && config.admin.metricsPort === undefined) {
      notes.push('/metrics is not served');
      fixes.push('set admin.metricsToken or admin.metricsPort to scrape metrics');
    }
    if (config.store.type === 'sqlite') notes.push('SQLite store: run a single replica');
  }
  const detail = `mode ${config.mode}, issuer ${publicUrl}, ${config.routes.length} route(s)${notes.length > 0 ? `; ${notes.join('; ')}` : ''}`;
  return fixes.length > 0 ? { name: 'config', status: 'warn', detail, fix: fixes.join('; ') } : { name: 'config', status: 'ok', detail };
}

/** Runs `check` with a time limit; a timeout is a failure of its own. */
async function withTimeout<T>(what: string, timeoutMs: number, check: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([check(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const firstLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';

export async function checkStore(open: () => Promise<Store>, config: GatehouseConfig, timeoutMs = 5_000): Promise<{ check: DoctorCheck; store?: Store }> {
  const where = config.store.type === 'sqlite' ? `SQLite ${config.store.sqlitePath}` : 'Redis';
  // Opening a SQLite store creates it: a doctor that did so left an empty store where a typo pointed, and said ok.
  if (config.store.type === 'sqlite' && config.store.sqlitePath !== ':memory:' && !existsSync(config.store.sqlitePath)) {
    return {
      check: { name: 'store', status: 'warn', detail: `${where} does not exist yet (not created by this check)`, fix: 'gatehouse start creates it there; if a store should already be there, check store.sqlitePath' },
    };
  }
  const fix =
    config.store.type === 'sqlite'
      ? 'check that store.sqlitePath is on a writable disk and not locked by another program'
      : 'check that Redis is running and reachable, and the host, port, password and TLS (rediss://) in store.redisUrl';
  let store: Store | undefined;
  try {
    const opened = await withTimeout('the store', timeoutMs, open);
    store = opened;
    const started = performance.now();
    await withTimeout('the store', timeoutMs, () => opened.ping());
    const detail = `${where} answered in ${Math.round(performance.now() - started)} ms`;
    const risks = opened.configurationRisks === undefined ? [] : await withTimeout('the store', timeoutMs, () => opened.configurationRisks!());
    if (risks.length > 0) return { check: { name: 'store', status: 'warn', detail: `${detail}; ${risks.join('; ')}`, fix: 'see "Redis requirements" in docs/operations.md (maxmemory-policy noeviction; AOF or RDB snapshots)' }, store };
    return { check: { name: 'store', status: 'ok', detail }, store };
  } catch (error) {
    await store?.close().catch(() => {});
    return { check: { name: 'store', status: 'fail', detail: `${where}: ${firstLine(error)}`, fix } };
  }
}

/** Where the upstream's discovery document is: Entra's from the tenant, others' from the issuer. */
export function discoveryUrlOf(upstream: NonNullable<GatehouseConfig['upstream']>): URL {
  if (upstream.type === 'entra' && upstream.entra !== undefined) return createEntraProfile(upstream.entra).discoveryUrl;
  const issuer = (upstream.issuer ?? '').replace(/\/+$/, '');
  return new URL(`${issuer}/.well-known/openid-configuration`);
}

export async function checkUpstream(config: GatehouseConfig, fetch: typeof globalThis.fetch): Promise<DoctorCheck> {
  const upstream = config.upstream;
  if (upstream === undefined) {
    return { name: 'upstream', status: 'fail', detail: 'no upstream identity provider configured', fix: 'set upstream (run "gatehouse init" for a template)' };
  }
  let url: URL;
  try {
    url = discoveryUrlOf(upstream);
  } catch (error) {
    return { name: 'upstream', status: 'fail', detail: firstLine(error), fix: 'set upstream.issuer (or upstream.entra.tenantId) to the IdP URL' };
  }
  const shown = `${url.origin}${url.pathname}`;
  const timeoutMs = Math.min(upstream.timeoutMs, 10_000);
  try {
    const response = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const metadata = (await response.json()) as Record<string, unknown>;
    const missing = ['issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri'].filter((field) => typeof metadata[field] !== 'string');
    if (missing.length > 0) throw new Error(`the document lacks ${missing.join(', ')}`);
    if (upstream.type === 'oidc' && upstream.issuer !== undefined && metadata.issuer !== upstream.issuer.replace(/\/+$/, '') && metadata.issuer !== upstream.issuer) {
      return {
        name: 'upstream',
        status: 'fail',
        detail: `${shown} names issuer ${String(metadata.issuer)}, not ${upstream.issuer}`,
        fix: 'set upstream.issuer to exactly the issuer the IdP publishes',
      };
    }
    // What was checked, and what was not: an unknown client id or a wrong credential shows at the first sign-in.
    return { name: 'upstream', status: 'ok', detail: `${shown} answered; issuer ${String(metadata.issuer)} (the client ${upstream.clientId} and its credential are checked at the first sign-in, not here)` };
  } catch (error) {
    const reason = error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : firstLine(error);
    return {
      name: 'upstream',
      status: 'fail',
      detail: `discovery at ${shown} failed: ${reason}`,
      // The demo's advice only for the demo: a production operator read about ports of a stand-in it does not run.
      fix:
        config.mode === 'demo' && upstream.issuer === `http://localhost:${config.demo.identityProviderPort}`
          ? 'start the demo with "gatehouse start" (its local identity provider runs inside it); a demo on moved ports is checked with the same GATEHOUSE_PORT and GATEHOUSE_DEMO_*_PORT variables it was started with'
          : 'check the issuer URL, DNS, outbound firewall/proxy, and that the IdP is up',
    };
  }
}

export async function checkKeys(store: Store, config: GatehouseConfig, clock: Clock): Promise<DoctorCheck> {
  let keys;
  try {
    keys = await listKeys({ store, config, clock });
  } catch (error) {
    return { name: 'keys', status: 'fail', detail: firstLine(error), fix: 'check keys.file (or run "gatehouse init" to write a key set)' };
  }
  const now = clock.now();
  const current = keys.filter((key) => key.status === 'current');
  const signing = current.find((key) => key.use === 'sig');
  const sealing = current.find((key) => key.use === 'enc');
  if (signing === undefined || sealing === undefined) {
    return config.keys.source === 'store'
      ? { name: 'keys', status: 'warn', detail: 'no keys yet', fix: 'they are created when Gatehouse first starts; or run "gatehouse keys rotate"' }
      : { name: 'keys', status: 'fail', detail: 'the key file has no current signing or sealing key', fix: 'run "gatehouse keys rotate" or regenerate the file with "gatehouse init"' };
  }
  const ageDays = Math.floor((now - Math.min(signing.createdAt, sealing.createdAt)) / 86_400_000);
  const prunable = keys.filter((key) => key.prunableAt !== undefined && key.prunableAt <= now);
  const detail = `current signing ${signing.kid} (${signing.alg}), sealing ${sealing.kid}; ${ageDays} day(s) old; ${keys.length - current.length} retired`;
  const fixes: string[] = [];
  if (ageDays >= KEY_ROTATION_AGE_DAYS) fixes.push(`keys are older than ${KEY_ROTATION_AGE_DAYS} days: run "gatehouse keys rotate"`);
  if (prunable.length > 0) fixes.push(`${prunable.length} retired key(s) can go: run "gatehouse keys prune"`);
  return fixes.length > 0 ? { name: 'keys', status: 'warn', detail, fix: fixes.join('; ') } : { name: 'keys', status: 'ok', detail };
}

/** Why a TCP connection to `url`'s host and port failed (refused, no such host, no answer in time), or undefined. */
export type ReachBackend = (url: URL, timeoutMs: number) => Promise<string | undefined>;

export const reachByTcp: ReachBackend = (url, timeoutMs) =>
  new Promise((resolve) => {
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port });
    // A probe must not keep a stopping process alive (gatehouse start runs one as it starts).
    socket.unref();
    const done = (problem: string | undefined) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED' ? 'connection refused' : error.code === 'ENOTFOUND' ? 'no such host' : (error.code ?? error.message)));
  });

/**
 * Whether each route's backend accepts a connection (a TCP connect, nothing sent: a backend takes only the gateway's
 * signed identity). Not a readiness check — a route whose backend is down answers 502 while every other route
 * serves — so a warning, with the routes it costs; `gatehouse start` logs the same once it listens.
 */
export async function checkBackends(config: GatehouseConfig, reach: ReachBackend = reachByTcp, timeoutMs = 2_000): Promise<DoctorCheck> {
  const results = await Promise.all(config.routes.map(async (route) => ({ route, problem: await reach(new URL(route.backend), timeoutMs) })));
  const failing = results.filter((result) => result.problem !== undefined);
  if (config.routes.length === 0) return { name: 'backends', status: 'warn', detail: 'no routes configured', fix: 'add routes (see docs/configuration.md)' };
  if (failing.length === 0) return { name: 'backends', status: 'ok', detail: `${results.length} backend(s) accept connections` };
  return {
    name: 'backends',
    status: 'warn',
    detail: failing.map(({ route, problem }) => `${route.path} → ${new URL(route.backend).host}: ${problem}`).join('; '),
    fix: 'start the backend, or check routes[].backend (host, port, DNS, firewall); these routes answer 502 until it accepts connections',
  };
}
