/**
 * Redaction of logged objects, compiled once from a list of paths (`a.b`, `a["b-c"]`, `*.b`), the same path syntax
 * as pino's `redact` option. Pino's own redaction parses every path again on every log call and runs for every key
 * of every line, strings and the message included; on the gateway's request path that was the largest cost after
 * the socket writes. Compiled into a tree, a line costs a few set lookups, and an object is copied only when
 * something in it is censored (the caller's object is never modified).
 */
export type Redactor = <T>(value: T) => T;

interface PathNode {
  /** The value at this node is replaced by the censor. */
  censor: boolean;
  children: Map<string, PathNode>;
  /** `*`: applies to every own key. */
  any: PathNode | undefined;
}

/**
 * A PathNode as `apply` walks it: its children as two arrays, so a log line costs no Map iterator and no
 * `[key, node]` entry per child (the request line walks some sixty of them).
 */
interface CompiledNode {
  censor: boolean;
  keys: string[];
  nodes: CompiledNode[];
  any: CompiledNode | undefined;
}

const newNode = (): PathNode => ({ censor: false, children: new Map(), any: undefined });

function compileNode(node: PathNode): CompiledNode {
  return {
    censor: node.censor,
    keys: [...node.children.keys()],
    nodes: [...node.children.values()].map(compileNode),
    any: node.any && compileNode(node.any),
  };
}

/** `req.headers["proxy-authorization"]` → `['req', 'headers', 'proxy-authorization']`. */
export function parseRedactPath(path: string): string[] {
  const parts: string[] = [];
  const pattern = /([^.[\]]+)|\[\s*(?:"([^"]*)"|'([^']*)'|([^\]]*))\s*\]/g;
  for (const match of path.matchAll(pattern)) parts.push(match[1] ?? match[2] ?? match[3] ?? match[4] ?? '');
  if (parts.length === 0) throw new Error(`empty redact path "${path}"`);
  return parts;
}

/** A value at a censored path that is kept all the same, given its key and the object holding it (see the logger's error codes). */
export type KeepValue = (key: string, value: unknown, holder: object) => boolean;

export function compileRedaction(paths: readonly string[], censor: string, keep: KeepValue = () => false): Redactor {
  const tree = newNode();
  for (const path of paths) {
    let node = tree;
    for (const part of parseRedactPath(path)) {
      if (part === '*') node = node.any ??= newNode();
      else {
        let next = node.children.get(part);
        if (!next) node.children.set(part, (next = newNode()));
        node = next;
      }
    }
    node.censor = true;
  }
  const root = compileNode(tree);

  // Plain functions, no closure per call: this runs on every log line.
  function apply(value: unknown, node: CompiledNode): unknown {
    if (typeof value !== 'object' || value === null) return value;
    let out: Record<string, unknown> | undefined;
    const { keys, nodes } = node;
    for (let index = 0; index < keys.length; index++) {
      if (Object.hasOwn(value, keys[index]!)) out = visit(value, out, keys[index]!, nodes[index]!);
    }
    if (node.any) for (const key of Object.keys(value)) out = visit(value, out, key, node.any);
    return out ?? value;
  }

  /** Censors or descends into `key`; returns the copy made so far (made now if this key changed). */
  function visit(value: object, out: Record<string, unknown> | undefined, key: string, child: CompiledNode): Record<string, unknown> | undefined {
    const current = (out ?? (value as Record<string, unknown>))[key];
    let next: unknown;
    if (child.censor) {
      if (current === undefined || keep(key, current, value)) return out;
      next = censor;
    } else {
      next = apply(current, child);
      if (next === current) return out;
    }
    out ??= shallowCopy(value);
    out[key] = next;
    return out;
  }

  return <T>(value: T) => apply(value, root) as T;
}

/** A copy with the same prototype and every own property (an Error keeps its message and stack). */
function shallowCopy(value: object): Record<string, unknown> {
  if (Array.isArray(value)) return value.slice() as unknown as Record<string, unknown>;
  const copy = Object.defineProperties(Object.create(Object.getPrototypeOf(value) as object | null), Object.getOwnPropertyDescriptors(value)) as Record<string, unknown>;
  // V8's `stack` is an accessor that reads the error it was captured on: copied, it read as "" on the copy, so an
  // error with anything censored (a system error's `code`) was logged without its stack. Read once, kept as data.
  if (value instanceof Error) Object.defineProperty(copy, 'stack', { value: value.stack, writable: true, configurable: true, enumerable: false });
  return copy;
}
