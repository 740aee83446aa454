import type { RouteConfig } from '../config/schema.ts';
import { foldPolicyName } from '../protocol/tool-names.ts';

/**
 * Per-tool authorization. A tool listed in the route's `tools` needs all its scopes and, if it lists groups, at
 * least one of them (upstream groups or app roles from the `account` record); unlisted tools need only the route's
 * scopes, which the bearer check already enforced.
 */
export interface Caller {
  scopes: readonly string[];
  groups: readonly string[];
  /** For argument-level policies (argument-policy.ts): who, from the token and the `account` record. */
  subject: string;
  email?: string | undefined;
  tenant?: string | undefined;
  clientId: string;
  /** No signed-in user: client credentials or a workload token (../protocol/app-only.ts). */
  appOnly?: boolean;
}

export interface ToolDecision {
  allowed: boolean;
  /** Scopes the caller lacks (a step-up can fix these); empty when only a group is missing. */
  missingScopes: string[];
  /** Why no token of this caller could ever do (shown to the client); absent for a scope or group denial. */
  reason?: string;
  /** The caller is in none of the groups the tool's policy names (for the audit record: which rule refused). */
  missingGroup?: boolean;
}

type PolicyCaller = Pick<Caller, 'scopes' | 'groups' | 'appOnly'>;

/**
 * The route's policy entry a called name falls under: its own, else one whose name folds alike (NFKC, case, outer
 * spaces — what tool pinning folds). A policy for `delete_all` judged only that spelling: `DELETE_ALL` or
 * `delete_all ` passed unjudged to a backend that matches names loosely. The folded index is built once per `tools`
 * object (a reload replaces it).
 */
export function policyNameFor(route: RouteConfig, tool: string): string {
  if (Object.hasOwn(route.tools, tool)) return tool;
  let folded = foldedPolicyNames.get(route.tools);
  if (folded === undefined) {
    folded = new Map(Object.keys(route.tools).map((name) => [foldPolicyName(name), name]));
    foldedPolicyNames.set(route.tools, folded);
  }
  return folded.size === 0 ? tool : (folded.get(foldPolicyName(tool)) ?? tool);
}

const foldedPolicyNames = new WeakMap<RouteConfig['tools'], Map<string, string>>();
/** The form policy names are compared in: NFKC, case-folded, without outer spaces. */

export function decideTool(route: RouteConfig, tool: string, caller: PolicyCaller): ToolDecision {
  const policy = Object.hasOwn(route.tools, tool) ? route.tools[tool] : undefined;
  if (!policy) return { allowed: true, missingScopes: [] };
  if (policy.appOnly === 'deny' && caller.appOnly === true) {
    return { allowed: false, missingScopes: [], reason: 'it acts for a signed-in user and this caller is app-only (client credentials or a workload)' };
  }
  const missingScopes = policy.scopes.filter((scope) => !caller.scopes.includes(scope));
  const inGroup = groupAllows(policy, caller);
  return { allowed: missingScopes.length === 0 && inGroup, missingScopes, ...(inGroup ? {} : { missingGroup: true }) };
}

/**
 * Names of the route's listed tools this caller may not call, and no step-up would let them (used to filter
 * `tools/list`). A tool the caller lacks only a scope for stays listed while the route answers a denied call with
 * the step-up challenge (`deniedToolResponse: insufficient_scope`): the MCP step-up flow starts when the client calls
 * it, and a client choosing from the list never would — the tool was unreachable, the challenge dead code. Only a
 * scope the route offers (its `scopes`, what consent can grant) opens it, and only for a user: an app-only caller
 * (client credentials, a workload) has no one to consent. A missing group or a JSON-RPC refusal hides it too.
 */
export function deniedTools(route: RouteConfig, caller: PolicyCaller): Set<string> {
  const denied = new Set<string>();
  const stepUp = route.deniedToolResponse === 'insufficient_scope';
  for (const tool of Object.keys(route.tools)) {
    const decision = decideTool(route, tool, caller);
    if (decision.allowed) continue;
    const stepUpCannotHelp =
      decision.reason !== undefined ||
      caller.appOnly === true ||
      !groupAllows(route.tools[tool]!, caller) ||
      !decision.missingScopes.every((scope) => Object.hasOwn(route.scopes, scope));
    if (stepUp && decision.missingScopes.length > 0 && !stepUpCannotHelp) continue;
    denied.add(tool);
  }
  return denied;
}

const groupAllows = (policy: RouteConfig['tools'][string], caller: PolicyCaller): boolean =>
  policy.groups.length === 0 || policy.groups.some((group) => caller.groups.includes(group));

export const routeNeedsGroups = (route: RouteConfig): boolean =>
  Object.values(route.tools).some((policy) => policy.groups.length > 0);
