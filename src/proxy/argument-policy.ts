import type { RouteConfig } from '../config/schema.ts';
import { compileToolExpression, type CompiledToolExpression, type ToolPolicyInput } from '../config/tool-expressions.ts';
import { deniedTools, type Caller } from './tool-policy.ts';
import type { DeniedTools } from './tools-list-filter.ts';
import { comparedArgumentsOf, expressionReadsOf, type ComparedArgument } from '../config/argument-reads.ts';
import { foldedCollision, foldedName, memberSpellings, misspeltMember } from '../protocol/duplicate-members.ts';

/**
 * The argument-level part of a tool policy: the route's CEL expressions (config/tool-expressions.ts), compiled once
 * per route at start, evaluated for each `tools/call` after its scopes and groups passed. Fails closed: an
 * expression that errors at run time (a missing argument, a type the check could not foresee with `dyn` arguments)
 * or arguments too large or deep to hand to it deny the call with a reason — never a 500, never an allow.
 */
interface ArgumentPolicy {
  expression: CompiledToolExpression;
  denyReason: string | undefined;
  /**
   * The names the expression reads of the arguments, by folded name (config/argument-reads.ts). Undefined for an
   * expression that never reads them.
   */
  reads: ReadonlyMap<string, string> | undefined;
  /** It also reads names it computes at run time: two spellings of one name side by side are refused anywhere. */
  computedNames: boolean;
  /** The arguments it compares with literals, and the literals' types: one of another type is refused. */
  compared: readonly ComparedArgument[];
  /** The expression reads neither the arguments nor the tool's annotations: it decides by caller alone. */
  callerOnly: boolean;
  /** Nor the tool's name: it decides every tool alike. */
  sameForEveryTool: boolean;
}

export interface ArgumentPolicies {
  /** The expression that decides `tool`, if any: its own, else the route's default. */
  forTool(tool: string): ArgumentPolicy | undefined;
  /** The route's default (`defaultToolPolicy`), which decides every tool the route does not name. */
  routeDefault: ArgumentPolicy | undefined;
}

function compiled(source: string, denyReason: string | undefined): ArgumentPolicy {
  const { args, toolBeyondName, readsTool } = expressionReadsOf(source);
  return {
    expression: compileToolExpression(source),
    denyReason,
    reads: args === undefined ? undefined : memberSpellings(args.names),
    computedNames: args?.computed === true,
    compared: args === undefined ? [] : comparedArgumentsOf(source),
    // From the tree too: `tool["annot\x61tions"]` reads the annotations, which no pattern over the text saw.
    callerOnly: args === undefined && !toolBeyondName,
    sameForEveryTool: args === undefined && !readsTool,
  };
}

/**
 * What `tools/list` does not offer this caller: the route's tools its groups, scopes or app-only rule refuse
 * (tool-policy.ts), those whose expression — their own, or the route's default where they have none — decides by
 * caller alone and refuses this caller (`false`, `"support" in user.groups`: every call refused whatever its
 * arguments), and, when the route's default decides every tool alike by caller and refuses this one, every tool the
 * route does not name (the default decides those).
 */
export function toolsDeniedTo(route: RouteConfig, policies: ArgumentPolicies, caller: Caller): DeniedTools {
  const names = new Set(deniedTools(route, caller));
  for (const tool of Object.keys(route.tools)) {
    const policy = policies.forTool(tool);
    if (policy !== undefined && policy.callerOnly && !decideArguments(policies, { tool, args: {}, annotations: {}, caller }).allowed) names.add(tool);
  }
  const fallback = policies.routeDefault;
  const unnamedDenied = fallback !== undefined && fallback.sameForEveryTool && !decideWith(fallback, { tool: '', args: {}, annotations: {}, caller }).allowed;
  return unnamedDenied ? { names, allButNamed: new Set(Object.keys(route.tools)) } : { names };
}

export interface ArgumentDecision {
  allowed: boolean;
  /** Public: sent to the client and audited. */
  reason?: string;
  /** Private: logged, never sent (an evaluation error may quote argument names). */
  detail?: string;
}

/** Arguments deeper or larger than this are refused before any expression sees them (a bounded walk, no recursion risk). */
export const ARGUMENT_LIMITS = { maxDepth: 32, maxNodes: 10_000 } as const;

export function compileArgumentPolicies(route: RouteConfig): ArgumentPolicies {
  const byTool = new Map<string, ArgumentPolicy>();
  for (const [tool, policy] of Object.entries(route.tools)) {
    if (policy.allow !== undefined) byTool.set(tool, compiled(policy.allow, policy.denyReason));
  }
  const fallback = route.defaultToolPolicy ? compiled(route.defaultToolPolicy.allow, route.defaultToolPolicy.denyReason) : undefined;
  return { forTool: (tool) => (Object.hasOwn(route.tools, tool) ? byTool.get(tool) : undefined) ?? fallback, routeDefault: fallback };
}

export function decideArguments(
  policies: ArgumentPolicies,
  call: { tool: string; args: unknown; annotations: Record<string, unknown>; caller: Caller },
): ArgumentDecision {
  return decideWith(policies.forTool(call.tool), call);
}

function decideWith(policy: ArgumentPolicy | undefined, call: { tool: string; args: unknown; annotations: Record<string, unknown>; caller: Caller }): ArgumentDecision {
  if (policy === undefined) return { allowed: true };
  const args = call.args === undefined ? {} : call.args;
  if (!isPlainObject(args)) return { allowed: false, reason: 'the arguments must be an object' };
  if (!withinLimits(args)) return { allowed: false, reason: 'the arguments are too large or too deeply nested for the policy to check' };
  // An argument the policy reads, spelt in another case (`Path` where it reads `args.path`, `Recursive` where it
  // reads `args.opts.recursive`): absent to the policy, which may allow an absent one, and that very argument to a
  // backend binding it case-insensitively (Go). Two arguments of such a name in different cases: one field to that
  // backend (Go keeps the last), while the policy read the one of the exact spelling. Names the policy cannot read
  // keep any case: a tool taking a map of `PATH` and `path` is served.
  if (policy.reads !== undefined && misspeltAtAnyDepth(args, policy.reads, policy.computedNames)) {
    return { allowed: false, reason: 'an argument the policy checks is spelt in another case, or named twice in different cases' };
  }
  const mistyped = comparedTypeProblem(args, policy.compared);
  if (mistyped !== undefined) return { allowed: false, reason: mistyped };
  const input: ToolPolicyInput = {
    // An app-only caller's subject is a client id: never let it pass for a user's in `user.sub == …`.
    user: { sub: call.caller.appOnly === true ? '' : call.caller.subject, email: call.caller.email ?? '', groups: call.caller.groups, tenant: call.caller.tenant ?? '' },
    client: { id: call.caller.clientId, appOnly: call.caller.appOnly === true },
    tool: { name: call.tool, annotations: call.annotations },
    args,
  };
  try {
    if (policy.expression.allows(input)) return { allowed: true };
    return { allowed: false, reason: policy.denyReason ?? 'the policy of this tool does not allow this call' };
  } catch (error) {
    const detail = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    return { allowed: false, reason: 'the policy of this tool could not be evaluated for these arguments', detail };
  }
}

/**
 * Whether an object of `args`, at any depth, names a member `reads` holds in another spelling, or twice in two; with
 * `computed`, any name twice in two spellings.
 */
function misspeltAtAnyDepth(args: Record<string, unknown>, reads: ReadonlyMap<string, string>, computed: boolean): boolean {
  // Bounded: the arguments passed withinLimits.
  const pending: unknown[] = [args];
  while (pending.length > 0) {
    const value = pending.pop();
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      pending.push(...value);
      continue;
    }
    if (misspeltMember(value, reads) !== undefined) return true;
    if (computed ? foldedCollision(value) !== undefined : foldedCollisionAmong(value, reads)) return true;
    pending.push(...Object.values(value));
  }
  return false;
}

/** Two members of `object` sharing a folded name that `reads` holds (`path` and `PATH` where the policy reads `path`). */
function foldedCollisionAmong(object: object, reads: ReadonlyMap<string, string>): boolean {
  const collision = foldedCollision(object);
  if (collision === undefined) return false;
  const folded = new Set<string>();
  for (const key of Object.keys(object)) {
    const name = foldedName(key);
    if (!reads.has(name)) continue;
    if (folded.has(name)) return true;
    folded.add(name);
  }
  return false;
}

/**
 * Why an argument the policy compares with literals cannot be judged, or undefined. CEL's equality across types is
 * `false`, not an error: `args.recursive != true` held for the string `"true"`, the number 1 or `"yes"`, which a
 * lenient backend (Pydantic's validation, as FastMCP's tools have it) then read as the `true` the policy refused; so
 * an argument of another type than every literal it is compared with is refused (a `null` too). And an integer past
 * ±2^53 reached the policy rounded (`JSON.parse`) while a backend reading JSON exactly got the number sent:
 * `args.channel != 1234567890123456789` allowed that very channel. Such an integer is refused where it is compared.
 */
function comparedTypeProblem(args: Record<string, unknown>, compared: readonly ComparedArgument[]): string | undefined {
  for (const { path, types } of compared) {
    let value: unknown = args;
    for (const name of path) {
      value = isPlainObject(value) && Object.hasOwn(value, name) ? value[name] : undefined;
      if (value === undefined) break;
    }
    // Absent: the expression says what that means (an error, refused, unless it asks `has(…)` first).
    if (value === undefined) continue;
    const name = path.join('.');
    if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) {
      return `the argument ${name} is an integer too large for the policy to judge exactly; send it as a string`;
    }
    const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
    if (!types.has(type as 'boolean')) return `the argument ${name} is ${type === 'array' || type === 'object' ? 'an' : 'a'} ${type}, which the policy compares only with ${[...types].join(' or ')} values`;
  }
  return undefined;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** Breadth-first, so a 100 000-deep array costs a loop, not the stack. */
function withinLimits(root: unknown): boolean {
  let nodes = 0;
  let level: unknown[] = [root];
  for (let depth = 0; level.length > 0; depth++) {
    if (depth > ARGUMENT_LIMITS.maxDepth) return false;
    const next: unknown[] = [];
    for (const value of level) {
      if (++nodes > ARGUMENT_LIMITS.maxNodes) return false;
      if (value !== null && typeof value === 'object') next.push(...(Array.isArray(value) ? value : Object.values(value)));
    }
    level = next;
  }
  return true;
}
