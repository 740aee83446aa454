import { parseToolExpression } from './tool-expressions.ts';

/**
 * Which names of a tool call's arguments a CEL tool policy reads, from its syntax tree: what the gateway must refuse
 * in another spelling (`Path` where the policy reads `args.path`), since a backend that binds names
 * case-insensitively (Go's `encoding/json`, as mcp-go decodes calls) reads that spelling as the very argument the
 * policy judged absent. Read from the tree, not the text: a comment (`// don't …`) or an escape (`"pa\x74h"`) is what
 * the parser makes of it, and only strings in places that name an argument count (`args["path"]`, `"path" in args`,
 * `k == "path"` for a key `k` of the arguments), not the values compared (`args.format == "JSON"`).
 */
export interface ArgumentReads {
  /** The names read: fields selected from the arguments or from what is bound to them, at any depth, and constant keys. */
  names: string[];
  /**
   * Names the tree cannot tell (`args[user.field]`, `k.startsWith("pa")` for a key `k`): the other spellings of those
   * cannot be refused, and the operator is told so when the configuration loads.
   */
  computed: boolean;
}

/** What an expression reads of the call: its arguments, and of the tool more than its name (its annotations). */
export interface ExpressionReads {
  /** Undefined for an expression that never reads the arguments. */
  args: ArgumentReads | undefined;
  /** It reads the tool's annotations (anything of `tool` but `tool.name`): it decides by more than the caller. */
  toolBeyondName: boolean;
  /** It reads anything of the tool, its name included. */
  readsTool: boolean;
}

export function expressionReadsOf(source: string): ExpressionReads {
  const reads: Reads = { names: new Set<string>(), computed: false, readsArgs: false, toolBeyondName: false, readsTool: false };
  const scope: Scope = { derived: new Set(['args']), keys: new Map(), constants: new Map(), inputs: new Set(['tool']) };
  walk(parseToolExpression(source) as CelNode, scope, reads);
  return {
    args: reads.readsArgs ? { names: [...reads.names], computed: reads.computed } : undefined,
    toolBeyondName: reads.toolBeyondName,
    readsTool: reads.readsTool,
  };
}

/** Undefined for an expression that never reads the arguments. */
export function argumentReadsOf(source: string): ArgumentReads | undefined {
  return expressionReadsOf(source).args;
}

interface CelNode {
  op: string;
  args: unknown;
}

interface Scope {
  /** Variables whose values may come from the arguments (`args`, and what a macro or `cel.bind` binds to them). */
  derived: ReadonlySet<string>;
  /** Variables a macro binds to the members of such a value (the keys, when it is a map), with that value. */
  keys: ReadonlyMap<string, CelNode>;
  /** Variables `cel.bind` binds to a constant string. */
  constants: ReadonlyMap<string, string>;
  /** The policy inputs not shadowed by a macro or `cel.bind` variable of the same name (`tool`). */
  inputs: ReadonlySet<string>;
}

interface Reads {
  names: Set<string>;
  computed: boolean;
  readsArgs: boolean;
  toolBeyondName: boolean;
  readsTool: boolean;
}

/** The comprehension macros: `receiver.all(v, …)`, each binding its first argument to the receiver's members. */
const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

const isNode = (value: unknown): value is CelNode => typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as CelNode).op === 'string';

/** Every node among a node's arguments, however nested in lists (a map literal's entries are pairs). */
function children(node: CelNode): CelNode[] {
  const found: CelNode[] = [];
  const pending: unknown[] = [node.args];
  while (pending.length > 0) {
    const next = pending.pop();
    if (isNode(next)) found.push(next);
    else if (Array.isArray(next)) pending.push(...next);
  }
  return found;
}

function isDerived(node: CelNode, scope: Scope): boolean {
  if (node.op === 'id') return scope.derived.has(node.args as string);
  if (node.op === 'value') return false;
  return children(node).some((child) => isDerived(child, scope));
}

function constantOf(node: CelNode, scope: Scope): string | undefined {
  if (node.op === 'value') return typeof node.args === 'string' ? node.args : undefined;
  if (node.op === 'id') return scope.constants.get(node.args as string);
  if (node.op === '+') {
    const [left, right] = node.args as CelNode[];
    const a = left && constantOf(left, scope);
    const b = right && constantOf(right, scope);
    return a !== undefined && b !== undefined ? a + b : undefined;
  }
  return undefined;
}

const isKey = (node: CelNode | undefined, scope: Scope): boolean => node?.op === 'id' && scope.keys.has(node.args as string);

/** Two expressions written alike (positions aside): `args[k]` reads under `k` the value `k` iterates only then. */
function sameExpression(a: CelNode | undefined, b: CelNode | undefined): boolean {
  const written = (node: CelNode | undefined) =>
    JSON.stringify(node, (key, value: unknown) => (key === 'pos' || key === 'start' || key === 'end' ? undefined : typeof value === 'bigint' ? `${value}n` : value));
  return a !== undefined && b !== undefined && written(a) === written(b);
}

/** What a key iterates once a name in what it iterated is bound to something else: equal to nothing written. */
const STALE: CelNode = { op: 'stale', args: [] };

/** Whether `node` names the variable `name` anywhere in it. */
function mentions(node: CelNode, name: string): boolean {
  if (node.op === 'id') return node.args === name;
  return children(node).some((child) => mentions(child, name));
}

/** A number, as an index into a list: an element, no name. */
const isNumber = (node: CelNode): boolean => node.op === 'value' && (typeof node.args === 'bigint' || typeof node.args === 'number');

/** The constant keys of every map literal in a literal (`{"recursive": true}`, `[{"path": 1}]`); undefined when one is not constant. */
function literalKeys(node: CelNode, scope: Scope): string[] | undefined {
  if (node.op === 'map') {
    const keys: string[] = [];
    for (const [key, value] of node.args as CelNode[][]) {
      const constant = key && constantOf(key, scope);
      if (constant === undefined) return undefined;
      keys.push(constant);
      const inner = value && literalKeys(value, scope);
      if (inner === undefined) return undefined;
      keys.push(...inner);
    }
    return keys;
  }
  if (node.op === 'list') {
    const keys: string[] = [];
    for (const item of children(node)) {
      const inner = literalKeys(item, scope);
      if (inner === undefined) return undefined;
      keys.push(...inner);
    }
    return keys;
  }
  return node.op === 'value' || node.op === 'id' ? [] : undefined;
}

/**
 * Notes what `node` reads. A member of the arguments bound by a macro (`k` in `args.exists(k, …)`: a key when they
 * are a map, an element when a list) is read on an allow-list: a field selected or a constant index from it (an
 * element), its value looked up (`args[k]`), or it compared with a constant or a list or map of them (a key named);
 * any other use (`k.startsWith("pa")`, `string(k) == …`, `k + ""`) computes names the tree cannot list.
 */
function walk(node: CelNode, scope: Scope, reads: Reads): void {
  const args = node.args;
  switch (node.op) {
    case 'id':
      if (args === 'args' && scope.derived.has('args')) reads.readsArgs = true;
      if (args === 'tool' && scope.inputs.has('tool')) {
        reads.toolBeyondName = true;
        reads.readsTool = true;
      }
      if (scope.keys.has(args as string)) reads.computed = true;
      return;
    case '.': {
      const [operand, field] = args as [CelNode, string];
      if (operand.op === 'id' && operand.args === 'tool' && scope.inputs.has('tool') && field === 'name') {
        reads.readsTool = true;
        return;
      }
      if (isDerived(operand, scope)) reads.names.add(field);
      // A field of a member: an element, whatever a key would be.
      if (!isKey(operand, scope)) walk(operand, scope, reads);
      return;
    }
    case '[]': {
      const [operand, index] = args as [CelNode, CelNode];
      // `args[k]` for a `k` iterating `args` reads the value under a key that is there, however it is spelt; under a
      // member of another value (`args.fields.all(f, args[f] …)`) it reads a name computed at run time.
      const ownKey = isKey(index, scope) && sameExpression(operand, scope.keys.get(index.args as string));
      if (isDerived(operand, scope) && !ownKey && !isNumber(index)) noteKey(index, scope, reads);
      if (!isKey(operand, scope)) walk(operand, scope, reads);
      if (!ownKey && !isKey(index, scope)) walk(index, scope, reads);
      return;
    }
    case 'in': {
      const [member, container] = args as [CelNode, CelNode];
      if (isDerived(container, scope)) noteKey(member, scope, reads);
      if (isKey(member, scope) && constantsOf(container, scope) !== undefined) {
        for (const constant of constantsOf(container, scope)!) reads.names.add(constant);
        return;
      }
      walk(member, scope, reads);
      walk(container, scope, reads);
      return;
    }
    case '==':
    case '!=': {
      const [left, right] = args as [CelNode, CelNode];
      // A key compared with a string names that key (`args.exists(k, k == "path")`).
      for (const [key, other] of [
        [left, right],
        [right, left],
      ] as const) {
        const constant = isKey(key, scope) ? constantOf(other, scope) : undefined;
        if (constant !== undefined) {
          reads.names.add(constant);
          return;
        }
        // A value of the arguments compared with a literal map (`args.opts != {"recursive": true}`) reads its keys.
        if (isDerived(key, scope) && (other.op === 'map' || other.op === 'list')) {
          const keys = literalKeys(other, scope);
          if (keys === undefined) reads.computed = true;
          else for (const name of keys) reads.names.add(name);
        }
      }
      walk(left, scope, reads);
      walk(right, scope, reads);
      return;
    }
    case 'rcall': {
      const [method, receiver, calledWith] = args as [string, CelNode, CelNode[]];
      walk(receiver, scope, reads);
      const [variable, ...body] = calledWith;
      if (MACROS.has(method) && variable?.op === 'id') {
        const derived = isDerived(receiver, scope);
        walkBound(variable.args as string, { derived, key: derived ? receiver : undefined, constant: undefined }, body, scope, reads);
        return;
      }
      if (method === 'bind' && receiver.op === 'id' && receiver.args === 'cel' && variable?.op === 'id') {
        const [value, ...rest] = body;
        // `cel.bind(n, k, …)` of a key keeps it a key under the new name.
        const aliasesKey = value !== undefined && isKey(value, scope);
        if (value && !aliasesKey) walk(value, scope, reads);
        const derived = value !== undefined && isDerived(value, scope);
        const iterated = aliasesKey ? scope.keys.get(value.args as string) : undefined;
        walkBound(variable.args as string, { derived, key: iterated, constant: value && constantOf(value, scope) }, rest, scope, reads);
        return;
      }
      for (const argument of calledWith) walk(argument, scope, reads);
      return;
    }
    case 'map': {
      // A literal map read against the arguments however it gets there (`args.opts in [{"recursive": true}]`, bound
      // by `cel.bind`, wrapped in `dyn`): its keys are names of theirs. A superset; a key computed is computed.
      const keys = literalKeys(node, scope);
      if (keys === undefined) reads.computed = true;
      else for (const name of keys) reads.names.add(name);
      for (const child of children(node)) walk(child, scope, reads);
      return;
    }
    default:
      for (const child of children(node)) walk(child, scope, reads);
  }
}

/** The constant strings of a list or map literal (a map's keys), or undefined when it is no such literal. */
function constantsOf(node: CelNode, scope: Scope): string[] | undefined {
  if (node.op !== 'list' && node.op !== 'map') return undefined;
  const items = node.op === 'list' ? children(node) : (node.args as CelNode[][]).map((entry) => entry[0]!);
  const constants = items.map((item) => constantOf(item, scope));
  return constants.every((constant) => constant !== undefined) ? (constants as string[]) : undefined;
}

/** A string naming a member of the arguments: noted when constant, else the names are computed. */
function noteKey(node: CelNode, scope: Scope, reads: Reads): void {
  if (node.op === 'list') {
    for (const item of children(node)) noteKey(item, scope, reads);
    return;
  }
  const constant = constantOf(node, scope);
  if (constant !== undefined) reads.names.add(constant);
  else reads.computed = true;
}

/** The body of a macro or `cel.bind` with `variable` bound (shadowing any outer one of that name). */
function walkBound(
  variable: string,
  bound: { derived: boolean; key: CelNode | undefined; constant: string | undefined },
  body: CelNode[],
  scope: Scope,
  reads: Reads,
): void {
  const derived = new Set(scope.derived);
  const keys = new Map(scope.keys);
  const constants = new Map(scope.constants);
  const inputs = new Set(scope.inputs);
  if (bound.derived) derived.add(variable);
  else derived.delete(variable);
  // A key iterating an expression that names the variable now bound no longer iterates what `args[k]` there reads:
  // `cel.bind(v, args.a, v.all(k, cel.bind(v, args.b, v[k] == 1)))`.
  // It stays a key (its uses are still read), iterating nothing any expression written there is.
  for (const [key, iterated] of keys) if (mentions(iterated, variable)) keys.set(key, STALE);
  if (bound.key !== undefined) keys.set(variable, mentions(bound.key, variable) ? STALE : bound.key);
  else keys.delete(variable);
  if (bound.constant !== undefined) constants.set(variable, bound.constant);
  else constants.delete(variable);
  inputs.delete(variable);
  for (const node of body) walk(node, { derived, keys, constants, inputs }, reads);
}

/** The JSON type of a literal a policy looks an argument up among (`null` included). */
export type LiteralType = 'boolean' | 'number' | 'string' | 'null';

/** An argument (its path below `args`) the policy looks up in a list of literals, and the literals' types. */
export interface ListedArgument {
  path: readonly string[];
  types: ReadonlySet<LiteralType>;
}

/**
 * The arguments a policy looks up in a list of literals (`args.mode in ["fast", "safe"]`), by path from `args`, with
 * the literals' types. `==` and `!=` between values of different types are evaluation errors
 * (tool-expressions.ts), but list membership compares inside the library, where CEL's cross-type `false` holds:
 * `!(args.recursive in [true])` let the string `"true"` through to a backend that reads it as `true`. The gateway
 * refuses an argument of none of the literals' types before evaluating instead (argument-policy.ts). Paths are read
 * from `args` itself (fields and constant keys); a list of anything but literals is not judged so.
 */
export function listedArgumentsOf(source: string): ListedArgument[] {
  const found = new Map<string, { path: string[]; types: Set<LiteralType> }>();
  const pending: CelNode[] = [parseToolExpression(source) as CelNode];
  while (pending.length > 0) {
    const node = pending.pop()!;
    pending.push(...children(node));
    if (node.op !== 'in' || !Array.isArray(node.args)) continue;
    const [left, right] = node.args as unknown[];
    if (!isNode(left) || !isNode(right) || right.op !== 'list') continue;
    const path = argumentPath(left);
    const items = children(right);
    const types = items.map(literalType);
    if (path === undefined || path.length === 0 || types.length === 0 || types.some((type) => type === undefined)) continue;
    const key = JSON.stringify(path);
    const entry = found.get(key) ?? { path, types: new Set<LiteralType>() };
    for (const type of types) entry.types.add(type!);
    found.set(key, entry);
  }
  return [...found.values()];
}

/** `args.a.b`, `args["a"].b` → `["a", "b"]`; undefined for anything else. */
function argumentPath(node: CelNode): string[] | undefined {
  if (node.op === 'id') return node.args === 'args' ? [] : undefined;
  if ((node.op !== '.' && node.op !== '[]') || !Array.isArray(node.args)) return undefined;
  const [operand, member] = node.args as unknown[];
  if (!isNode(operand)) return undefined;
  if (node.op === '.' && typeof member === 'string') return argumentPath(operand)?.concat(member);
  if (node.op === '[]' && isNode(member) && member.op === 'value' && typeof member.args === 'string') return argumentPath(operand)?.concat(member.args);
  return undefined;
}

/** The JSON type of a literal list item; undefined for bytes, `1u` and anything but a literal. */
function literalType(node: CelNode): LiteralType | undefined {
  // `-1` is the negation of the literal 1.
  if (node.op === '-_' && isNode(node.args)) return literalType(node.args) === 'number' ? 'number' : undefined;
  if (node.op !== 'value') return undefined;
  const value = node.args;
  if (value === null) return 'null';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number' || typeof value === 'bigint') return 'number';
  return undefined;
}
