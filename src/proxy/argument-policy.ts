import type { RouteConfig } from '../config/schema.ts';
import { compileToolExpression, type CompiledToolExpression, type ToolPolicyInput } from '../config/tool-expressions.ts';
import { refusedAsLenientlyRead } from './lenient-readings.ts';
import { deniedTools, type Caller } from './tool-policy.ts';
import type { DeniedTools } from './tools-list-filter.ts';
import { expressionReadsOf, listedArgumentsOf, type ListedArgument, type LiteralType } from '../config/argument-reads.ts';
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
  /** The arguments it looks up in lists of literals, and the literals' types: one of another type is refused. */
  listed: readonly ListedArgument[];
  /** Of those, the paths (JSON of their names) looked up only among strings: a string there is read as nothing else. */
  keepsStrings: ReadonlySet<string>;
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
  const listed = args === undefined ? [] : listedArgumentsOf(source);
  return {
    expression: compileToolExpression(source),
    denyReason,
    reads: args === undefined ? undefined : memberSpellings(args.names),
    computedNames: args?.computed === true,
    listed,
    keepsStrings: new Set(listed.filter((entry) => entry.types.size === 1 && entry.types.has('string')).map((entry) => JSON.stringify(entry.path))),
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
  call: { tool: string; args: unknown; annotations: Record<string, unknown>; inputSchema?: unknown; schemaChanged?: boolean; caller: Caller },
): ArgumentDecision {
  return decideWith(policies.forTool(call.tool), call);
}

function decideWith(policy: ArgumentPolicy | undefined, call: { tool: string; args: unknown; annotations: Record<string, unknown>; inputSchema?: unknown; schemaChanged?: boolean; caller: Caller }): ArgumentDecision {
  if (policy === undefined) return { allowed: true };
  const args = call.args === undefined ? {} : call.args;
  if (!isPlainObject(args)) return { allowed: false, reason: 'the arguments must be an object' };
  if (!withinLimits(args)) return { allowed: false, reason: 'the arguments are too large or too deeply nested for the policy to check' };
  // `"/etc/passwd\ud800"` is not `/etc/passwd` to the policy (a deny-list passes it), and is to a server whose JSON
  // decoder drops what is no whole character: such a string is judged by no reading a server is sure to share.
  if (!wholeCharactersThroughout(args)) return { allowed: false, reason: 'an argument holds a lone UTF-16 surrogate (half a character), which servers read in different ways' };
  // An argument the policy reads, spelt in another case (`Path` where it reads `args.path`, `Recursive` where it
  // reads `args.opts.recursive`): absent to the policy, which may allow an absent one, and that very argument to a
  // backend binding it case-insensitively (Go). Two arguments of such a name in different cases: one field to that
  // backend (Go keeps the last), while the policy read the one of the exact spelling. Names the policy cannot read
  // keep any case: a tool taking a map of `PATH` and `path` is served.
  if (policy.reads !== undefined && misspeltAtAnyDepth(args, policy.reads, policy.computedNames)) {
    return { allowed: false, reason: 'an argument the policy checks is spelt in another case, or named twice in different cases' };
  }
  const reads = policy.reads;
  const isRead = reads === undefined ? () => false : policy.computedNames ? () => true : (name: string) => reads.has(foldedName(name));
  // The tool's approved input schema, where the route pins definitions: an argument the policy reads must be of the
  // type it declares, so no backend reads it as another value than the one judged (the sound check; the lenient
  // readings below stand in where no schema is known).
  const schema = call.inputSchema === undefined ? undefined : declaredTypesProblem(args, call.inputSchema, isRead);
  if (schema !== undefined && schema.problem !== undefined) return { allowed: false, reason: schema.problem };
  const unjudgeable = listedTypeProblem(args, policy.listed) ?? inexactNumberProblem(args, policy.reads, policy.computedNames);
  if (unjudgeable !== undefined) return { allowed: false, reason: unjudgeable };
  const input: ToolPolicyInput = {
    // An app-only caller's subject is a client id: never let it pass for a user's in `user.sub == …`.
    user: { sub: call.caller.appOnly === true ? '' : call.caller.subject, email: call.caller.email ?? '', groups: call.caller.groups, tenant: call.caller.tenant ?? '' },
    client: { id: call.caller.clientId, appOnly: call.caller.appOnly === true },
    tool: { name: call.tool, annotations: call.annotations },
    args,
  };
  try {
    if (!policy.expression.allows(input)) return { allowed: false, reason: policy.denyReason ?? 'the policy of this tool does not allow this call' };
  } catch (error) {
    const detail = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    return { allowed: false, reason: 'the policy of this tool could not be evaluated for these arguments', detail };
  }
  // Allowed as sent; the backend may read other values from it (lenient-readings.ts). A reading the policy refuses
  // refuses the call; one it cannot evaluate is no reading a backend of this tool takes.
  // Every argument it reads is of a declared type: a lenient backend reads each as the value it is — unless the
  // backend now lists another definition than the approved one (it reads by that one).
  if (reads === undefined || (schema?.allDeclared === true && call.schemaChanged !== true)) return { allowed: true };
  const verdict = refusedAsLenientlyRead(
    args,
    isRead,
    (reading) => {
      try {
        return policy.expression.allows({ ...input, args: reading });
      } catch {
        return undefined;
      }
    },
    policy.keepsStrings,
    // The names it spells are its own fields even where it also computes names (which reads everything).
    (name) => reads.has(foldedName(name)),
  );
  if (verdict.refused === false) return { allowed: true };
  if (verdict.refused === 'unjudged') {
    return { allowed: false, reason: `the values the policy checks could be read otherwise by a lenient server in more ways than the gateway judges (too many fields to try one at a time for the size of the arguments, or a JSON string too large, too deep or with a number past 2^53)` };
  }
  return {
    allowed: false,
    reason: policy.denyReason ?? 'the policy of this tool does not allow this call as a lenient server reads its arguments ("true" as true, "5" as 5)',
    detail: `refused with the arguments read ${verdict.reading}`,
  };
}

/** Whether every string of `args` (names too) is whole Unicode characters. Bounded: the arguments passed withinLimits. */
function wholeCharactersThroughout(args: Record<string, unknown>): boolean {
  const pending: unknown[] = [args];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value === 'string') {
      if (!value.isWellFormed()) return false;
    } else if (Array.isArray(value)) {
      pending.push(...value);
    } else if (value !== null && typeof value === 'object') {
      for (const [name, member] of Object.entries(value)) {
        if (!name.isWellFormed()) return false;
        pending.push(member);
      }
    }
  }
  return true;
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
 * Why an argument the policy looks up in a list of literals cannot be judged, or undefined. `==` and `!=` across types
 * are evaluation errors (config/tool-expressions.ts), but list membership compares inside the library with CEL's
 * cross-type `false`: `!(args.recursive in [true])` held for the string `"true"`, which a lenient backend (Pydantic's
 * validation, as FastMCP's tools have it) then ran as `true`. An argument of none of the literals' types is refused,
 * before the expression runs: one that also reads it otherwise (`args.x in [1] || args.x.startsWith("a")`) is
 * refused for a string then, a mix of types for one argument this check does not serve.
 */
function listedTypeProblem(args: Record<string, unknown>, listed: readonly ListedArgument[]): string | undefined {
  for (const { path, types } of listed) {
    let value: unknown = args;
    for (const name of path) {
      value = isPlainObject(value) && Object.hasOwn(value, name) ? value[name] : undefined;
      if (value === undefined) break;
    }
    // Absent: the expression says what that means (an error, refused, unless it asks `has(…)` first). A null is no
    // member of any list and no lenient backend reads it as one (`args.x == null || args.x in […]` passes it).
    if (value === undefined || value === null) continue;
    const type = Array.isArray(value) ? 'array' : typeof value;
    if (!types.has(type as LiteralType)) {
      return `the argument ${path.join('.')} is ${type === 'array' || type === 'object' ? 'an' : 'a'} ${type}, which the policy looks up only among ${[...types].join(' or ')} values`;
    }
  }
  return undefined;
}

/**
 * Why a number among the arguments the policy reads cannot be judged exactly, or undefined: past ±2^53 `JSON.parse`
 * gave the expression a rounded number while a backend reading JSON exactly (Python) got the one sent —
 * `args.channel != 1234567890123456789` allowed that very channel. Checked under every name the policy reads (at any
 * depth; everywhere, when it computes names); the client can send such an id as a string.
 */
function inexactNumberProblem(args: Record<string, unknown>, reads: ReadonlyMap<string, string> | undefined, computed: boolean): string | undefined {
  if (reads === undefined) return undefined;
  // Bounded: the arguments passed withinLimits. Each entry: a value, and whether the policy reads it.
  const pending: Array<[unknown, boolean]> = [[args, computed]];
  while (pending.length > 0) {
    const [value, read] = pending.pop()!;
    if (typeof value === 'number') {
      if (read && Math.abs(value) > Number.MAX_SAFE_INTEGER) return 'an argument the policy checks is a number too large to judge exactly (past 2^53); send it as a string';
    } else if (Array.isArray(value)) {
      for (const item of value) pending.push([item, read]);
    } else if (isPlainObject(value)) {
      for (const [name, member] of Object.entries(value)) pending.push([member, read || reads.has(foldedName(name))]);
    }
  }
  return undefined;
}

/** JSON Schema's name for a JSON value's type (`integer` is a number that is one). */
function jsonTypesOf(value: unknown): string[] {
  if (value === null) return ['null'];
  if (Array.isArray(value)) return ['array'];
  if (typeof value === 'number') return Number.isInteger(value) ? ['integer', 'number'] : ['number'];
  return [typeof value];
}

/** The most schema nodes one call's arguments are checked against (arguments × union branches), and how deep. */
const MAX_SCHEMA_VISITS = 100_000;
const MAX_SCHEMA_DEPTH = 64;

/**
 * Whether the arguments the policy reads are of the types the tool's approved input schema declares: the first
 * that is not (`the argument recursive is a string; the tool's approved schema declares boolean`), and whether every
 * argument read had a declared type no backend reads otherwise. Reads `type` (one or a list; `nullable: true` adds
 * null), `properties`, `additionalProperties`, `items` and `anyOf`/`oneOf` (a value of some branch's types passes).
 * A schema without a type (`$ref`, `enum` alone) declares nothing, and a string is taken as a string only where the
 * schema says exactly that: a string allowed beside other types, or with `contentMediaType`/`contentSchema`, may be
 * parsed by the backend (the Python SDK parses JSON strings for any parameter not typed plain `str`; FastMCP's
 * `Json[…]`), so the lenient readings still judge it.
 */
function declaredTypesProblem(args: Record<string, unknown>, schema: unknown, isRead: (name: string) => boolean): { problem?: string; allDeclared: boolean } {
  let allDeclared = true;
  let visits = 0;
  const check = (value: unknown, node: unknown, path: string, inUnion: boolean, depth = 0): string | undefined => {
    // Bounded in work and in depth (unions nest without the arguments nesting: a schema thousands deep overflowed).
    if (++visits > MAX_SCHEMA_VISITS || depth > MAX_SCHEMA_DEPTH) throw new SchemaTooCostly();
    if (!isPlainObject(node)) {
      allDeclared = false;
      return undefined;
    }
    const branches = Array.isArray(node.anyOf) ? node.anyOf : Array.isArray(node.oneOf) ? node.oneOf : undefined;
    if (branches !== undefined) {
      if (branches.some((branch) => !isPlainObject(branch) || branch.type === undefined)) allDeclared = false;
      let first: string | undefined;
      for (const branch of branches) {
        const problem = check(value, branch, path, true, depth + 1);
        if (problem === undefined) return undefined;
        first ??= problem;
      }
      return first;
    }
    const listed = typeof node.type === 'string' ? [node.type] : Array.isArray(node.type) ? node.type.filter((type): type is string => typeof type === 'string') : [];
    const declared = node.nullable === true && listed.length > 0 ? [...listed, 'null'] : listed;
    if (declared.length === 0) allDeclared = false;
    else if (!jsonTypesOf(value).some((type) => declared.includes(type))) {
      const actual = jsonTypesOf(value)[0]!;
      return `the argument ${path} is ${/^[aeiou]/.test(actual) ? 'an' : 'a'} ${actual}; the tool's approved schema declares ${declared.join(' or ')}`;
    }
    if (typeof value === 'string' && (inUnion || declared.some((type) => type !== 'string') || node.contentMediaType !== undefined || node.contentSchema !== undefined)) {
      allDeclared = false;
    }
    if (Array.isArray(value)) {
      for (const [index, item] of value.entries()) {
        // Inside a union, a member may be read by another branch's schema: not taken as declared.
        const problem = check(item, node.items, `${path}[${index}]`, inUnion, depth + 1);
        if (problem !== undefined) return problem;
      }
    } else if (isPlainObject(value)) {
      const properties = isPlainObject(node.properties) ? node.properties : {};
      for (const [name, member] of Object.entries(value)) {
        const memberSchema = Object.hasOwn(properties, name) ? properties[name] : node.additionalProperties;
        const problem = check(member, memberSchema, `${path}.${name}`, inUnion, depth + 1);
        if (problem !== undefined) return problem;
      }
    }
    return undefined;
  };
  const properties = isPlainObject(schema) && isPlainObject(schema.properties) ? schema.properties : {};
  try {
    for (const [name, value] of Object.entries(args)) {
      if (!isRead(name)) continue;
      const problem = check(value, Object.hasOwn(properties, name) ? properties[name] : isPlainObject(schema) ? schema.additionalProperties : undefined, name, false);
      if (problem !== undefined) return { problem, allDeclared };
    }
  } catch (error) {
    if (error instanceof SchemaTooCostly) return { problem: "the arguments are too large to check against the tool's approved schema", allDeclared: false };
    throw error;
  }
  return { allDeclared };
}

class SchemaTooCostly extends Error {}

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
