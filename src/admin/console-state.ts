import { fastifyCookie } from '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import type { UpstreamClient } from '../upstream/types.ts';
import type { AdminDeps } from './admin-deps.ts';
import type { EndGrant } from '../grants/end-grant.ts';
import { createConsoleSessions, type ConsoleSessions } from './console-session.ts';
import type { GatehouseMetrics } from '../observability/metrics.ts';


/** The app's configuration reload, as the console's Reload button uses it (defined in src/app/reload-config.ts). */
type ConsoleReloadOutcome = { ok: true; report: { applied: string[]; needsRestart: string[] } } | { ok: false; problems: readonly string[] };
/** The console's Reload: the key set read again (awaited, so the page answers once a revoked key is gone), then the file. */
export type ConsoleReload = () => ConsoleReloadOutcome | Promise<ConsoleReloadOutcome>;
/**
 * The last reload this replica ran, by SIGHUP or the console (src/app/reload-config.ts): a refused SIGHUP was told
 * only in the log, and the overview said nothing of a file the running configuration no longer matched.
 */
export type LastReload = () => { trigger: string; at: number; outcome: ConsoleReloadOutcome } | undefined;

/** What the console's routes and `completeConsoleSignIn` share; built once per server by createAdminPlugin. */
export interface ConsoleState {
  ctx: GatehouseContext;
  upstream: UpstreamClient;
  metrics: GatehouseMetrics;
  sessions: ConsoleSessions;
  admin: AdminDeps;
  reloadConfig: ConsoleReload | undefined;
  lastReload: LastReload | undefined;
  /** Writes the upstream-state cookie the shared `/callback` reads (same name as the authorization server's). */
  upstreamCookie(reply: FastifyReply, value: string, maxAgeSeconds: number): void;
  /** The upstream-state cookie this browser holds, reused by its next sign-in (src/upstream/sign-in-state.ts). */
  upstreamBinding(request: FastifyRequest): string | undefined;
}

/**
 * Secure cookies unless `dev.insecureCookies` on an http public URL — the same rule as the authorization server's
 * (src/authorization/cookie-security.ts), which also refuses an http public URL that is not loopback at start-up.
 */
export function consoleCookiesSecure(ctx: GatehouseContext): boolean {
  return new URL(ctx.publicUrl).protocol === 'https:' || !ctx.config.dev.insecureCookies;
}

export function createConsoleState(ctx: GatehouseContext, deps: { upstream: UpstreamClient; metrics: GatehouseMetrics; endGrant?: EndGrant; reloadConfig?: ConsoleReload; lastReload?: LastReload }): ConsoleState {
  const secure = consoleCookiesSecure(ctx);
  const upstreamCookieName = secure ? '__Host-gatehouse-upstream' : 'gatehouse-upstream';
  return {
    ctx,
    upstream: deps.upstream,
    metrics: deps.metrics,
    reloadConfig: deps.reloadConfig,
    lastReload: deps.lastReload,
    sessions: createConsoleSessions({ keyring: ctx.keyring, clock: ctx.clock, random: ctx.random, secure, store: ctx.store }),
    admin: { store: ctx.store, clock: ctx.clock, config: ctx.config, ...(deps.endGrant === undefined ? {} : { endGrant: deps.endGrant }) },
    upstreamBinding(request) {
      const value = fastifyCookie.parse(request.headers.cookie ?? '')[upstreamCookieName];
      return typeof value === 'string' && value !== '' ? value : undefined;
    },
    upstreamCookie(reply, value, maxAgeSeconds) {
      const attributes = { path: '/', httpOnly: true, sameSite: 'lax' as const, secure, maxAge: maxAgeSeconds };
      reply.header('set-cookie', fastifyCookie.serialize(upstreamCookieName, value, maxAgeSeconds > 0 ? attributes : { ...attributes, expires: new Date(0) }));
    },
  };
}
