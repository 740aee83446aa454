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

/** Undefined for an expression that never reads the arguments. */
export function argumentReadsOf(source: string): ArgumentReads | undefined {
  const reads = { names: new Set<string>(), computed: false, readsArgs: false };
  walk(parseToolExpression(source) as CelNode, { derived: new Set(['args']), keys: new Set(), constants: new Map() }, reads);
  return reads.readsArgs ? { names: [...reads.names], computed: reads.computed } : undefined;
}

interface CelNode {
  op: string;
  args: unknown;
}

interface Scope {
  /** Variables whose values may come from the arguments (`args`, and what a macro or `cel.bind` binds to them). */
  derived: ReadonlySet<string>;
  /** Variables a macro binds to the members of such a value: the keys, when it is a map. */
  keys: ReadonlySet<string>;
  /** Variables `cel.bind` binds to a constant string. */
  constants: ReadonlyMap<string, string>;
}

interface Reads {
  names: Set<string>;
  computed: boolean;
  readsArgs: boolean;
}

/** The comprehension macros: `receiver.all(v, …)`, each binding its first argument to the receiver's members. */
const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);
/** String functions that, called on a key, test its spelling in ways no list of names captures. */
const STRING_TESTS = new Set(['startsWith', 'endsWith', 'contains', 'matches', 'lowerAscii', 'upperAscii', 'size']);

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

function walk(node: CelNode, scope: Scope, reads: Reads): void {
  const args = node.args;
  switch (node.op) {
    case 'id':
      if (args === 'args' && scope.derived.has('args')) reads.readsArgs = true;
      return;
    case '.': {
      const [operand, field] = args as [CelNode, string];
      if (isDerived(operand, scope)) reads.names.add(field);
      walk(operand, scope, reads);
      return;
    }
    case '[]': {
      const [operand, index] = args as [CelNode, CelNode];
      if (isDerived(operand, scope)) noteKey(index, scope, reads);
      walk(operand, scope, reads);
      walk(index, scope, reads);
      return;
    }
    case 'in': {
      const [member, container] = args as [CelNode, CelNode];
      if (isDerived(container, scope)) noteKey(member, scope, reads);
      walk(member, scope, reads);
      walk(container, scope, reads);
      return;
    }
    case '==':
    case '!=': {
      const [left, right] = args as [CelNode, CelNode];
      // A key compared with a string names that key (`args.exists(k, k == "path")`).
      if (isKey(left, scope)) noteKey(right, scope, reads);
      if (isKey(right, scope)) noteKey(left, scope, reads);
      walk(left, scope, reads);
      walk(right, scope, reads);
      return;
    }
    case 'rcall': {
      const [method, receiver, calledWith] = args as [string, CelNode, CelNode[]];
      walk(receiver, scope, reads);
      const [variable, ...body] = calledWith;
      if (MACROS.has(method) && variable?.op === 'id') {
        walkBound(variable.args as string, isDerived(receiver, scope), undefined, body, scope, reads);
        return;
      }
      if (method === 'bind' && receiver.op === 'id' && receiver.args === 'cel' && variable?.op === 'id') {
        const [value, ...rest] = body;
        if (value) walk(value, scope, reads);
        walkBound(variable.args as string, value !== undefined && isDerived(value, scope), value && constantOf(value, scope), rest, scope, reads, false);
        return;
      }
      if (STRING_TESTS.has(method) && isKey(receiver, scope)) reads.computed = true;
      for (const argument of calledWith) walk(argument, scope, reads);
      return;
    }
    default:
      for (const child of children(node)) walk(child, scope, reads);
  }
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
function walkBound(variable: string, derived: boolean, constant: string | undefined, body: CelNode[], scope: Scope, reads: Reads, members = true): void {
  const inner: Scope = { derived: new Set(scope.derived), keys: new Set(scope.keys), constants: new Map(scope.constants) };
  const derivedSet = inner.derived as Set<string>;
  const keySet = inner.keys as Set<string>;
  const constantMap = inner.constants as Map<string, string>;
  if (derived) derivedSet.add(variable);
  else derivedSet.delete(variable);
  // A macro's variable over the arguments is a member of them: a key when they are a map.
  if (derived && members) keySet.add(variable);
  else keySet.delete(variable);
  if (constant !== undefined) constantMap.set(variable, constant);
  else constantMap.delete(variable);
  for (const node of body) walk(node, inner, reads);
}
