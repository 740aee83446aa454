import type { RouteConfig } from '../config/schema.ts';
import type { ChallengeTarget } from '../errors/bearer-challenge.ts';
import { compileArgumentPolicies, type ArgumentPolicies } from './argument-policy.ts';
import { createBackendClient, type BackendClient } from './backend-client.ts';
import { backendBase, type BackendBase } from './backend-path.ts';
import { confinedMessageUrl } from './message-url.ts';
import { resourceMetadataUrl, resourceUrl } from './protected-resource-metadata.ts';
import type { VerifyTarget } from './verify-access-token.ts';

/** Everything derived once per configured route at start-up, so the request path only looks things up. */
export interface RouteState {
  route: RouteConfig;
  /** The OAuth resource identifier (RFC 8707) and the `aud` of its tokens. */
  resource: string;
  target: VerifyTarget;
  backend: BackendClient;
  /** Origin + legacy SSE path of the backend (legacy HTTP+SSE transport). */
  legacySseUrl: string;
  /** Origin and base path of the backend (plain HTTP routes confine every request under it). */
  backendBase: BackendBase;
  /** The paths of the other routes under this one (`/api/admin` under `/api`): a plain HTTP route's path must not resolve into one. */
  nestedRoutePaths: readonly string[];
  /** The route's CEL tool policies, compiled once. */
  argumentPolicies: ArgumentPolicies;
  /** confinedMessageUrl of this route's legacy SSE URL, remembered per message URL a backend announced. */
  messageUrl(announced: string): string | undefined;
}

/** Message URLs remembered per route: one per open legacy session, forgotten all at once past this. */
const REMEMBERED_MESSAGE_URLS = 1024;

export function createRouteState(publicUrl: string, route: RouteConfig, otherRoutes: readonly RouteConfig[] = []): RouteState {
  const resource = resourceUrl(publicUrl, route);
  const metadataUrl = resourceMetadataUrl(publicUrl, route);
  let compiledFor = route.tools;
  let compiled = compileArgumentPolicies(route);
  let target: VerifyTarget | undefined;
  const legacySseUrl = new URL(route.legacySsePath, route.backend).href;
  // Judged on every message POST of a session (the binding comes from the shared store): two URL parses each time.
  const messageUrls = new Map<string, string | undefined>();
  return {
    route,
    resource,
    // Read from the route on each request: a configuration reload (src/app/reload-config.ts) replaces its scopes (a
    // new array) or its DPoP settings. Built again only then, not on each of the two or three reads per request.
    get target(): VerifyTarget {
      if (target === undefined || target.requiredScopes !== route.requiredScopes || target.dpop !== route.dpop || target.dpopNonce !== route.dpopNonce) {
        target = {
          resourceMetadataUrl: metadataUrl,
          scope: route.requiredScopes.join(' '),
          resource,
          requiredScopes: route.requiredScopes,
          dpop: route.dpop,
          dpopNonce: route.dpopNonce,
        };
      }
      return target;
    },
    backend: createBackendClient(route),
    legacySseUrl,
    messageUrl(announced) {
      if (messageUrls.has(announced)) return messageUrls.get(announced);
      if (messageUrls.size >= REMEMBERED_MESSAGE_URLS) messageUrls.clear();
      const url = confinedMessageUrl(legacySseUrl, announced);
      messageUrls.set(announced, url);
      return url;
    },
    backendBase: backendBase(route.backend),
    nestedRoutePaths: otherRoutes.filter((other) => other !== route && other.path.startsWith(route.path.endsWith('/') ? route.path : `${route.path}/`)).map((other) => other.path),
    // Recompiled when a configuration reload replaces the route's `tools` (src/app/reload-config.ts assigns a new
    // object): a reloaded CEL rule must be the one enforced, not the one compiled at start.
    get argumentPolicies(): ArgumentPolicies {
      if (compiledFor !== route.tools) {
        compiled = compileArgumentPolicies(route);
        compiledFor = route.tools;
      }
      return compiled;
    },
  };
}

/** Challenge naming every scope a denied tool needs on top of the route's, so one step-up is enough. */
export function toolChallenge(state: RouteState, toolScopes: readonly string[]): ChallengeTarget {
  const scopes = [...new Set([...state.route.requiredScopes, ...toolScopes])];
  return { resourceMetadataUrl: state.target.resourceMetadataUrl, scope: scopes.join(' '), dpop: state.route.dpop };
}

/** The body limit of a request to this route: its own, or the server's (which bounds it; config-rules.ts). */
export function routeBodyLimit(state: RouteState, serverLimit: number): number {
  return Math.min(state.route.bodyLimitBytes ?? serverLimit, serverLimit);
}

/**
 * The route as its URL with a trailing slash answers: the same state (tokens, policies, backend, sessions), its 401s
 * naming the metadata document of that spelling, whose `resource` is that spelling (RFC 9728 §3.3).
 */
export function withSlashMetadata(state: RouteState): RouteState {
  const slashed: RouteState = Object.create(state) as RouteState;
  Object.defineProperty(slashed, 'target', {
    get: (): VerifyTarget => {
      const target = state.target;
      return { ...target, resourceMetadataUrl: `${target.resourceMetadataUrl}/` };
    },
  });
  return slashed;
}
