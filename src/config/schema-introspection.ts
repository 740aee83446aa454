import type { z } from 'zod';

/**
 * Reading the zod schema as data: the problem formatter needs the valid keys at a path (to suggest the nearest one),
 * the loader needs the expected type at a path (to turn `"8080"` from the environment into a number), and the docs
 * generator needs descriptions, types and defaults. All three walk the schema the same way, through these helpers.
 */
export type SchemaNode = z.ZodType;

interface NodeDef {
  type: string;
  innerType?: SchemaNode;
  in?: SchemaNode;
  element?: SchemaNode;
  valueType?: SchemaNode;
  options?: SchemaNode[];
  discriminator?: string;
  shape?: Record<string, SchemaNode>;
  entries?: Record<string, string | number>;
  values?: unknown[];
  defaultValue?: unknown;
  checks?: Array<{ _zod: { def: { check: string; value?: unknown; inclusive?: boolean; format?: string } } }>;
}

export const defOf = (node: SchemaNode): NodeDef => (node as unknown as { def: NodeDef }).def;

/** Wrappers that do not change the shape of the value: default, optional, nullable, pipes. */
const WRAPPERS = new Set(['default', 'optional', 'nullable', 'prefault', 'readonly', 'catch', 'nonoptional']);

/** The node under any default/optional wrappers, with the outermost description and default kept. */
export function unwrap(node: SchemaNode): { node: SchemaNode; description?: string; defaultValue?: unknown; optional: boolean } {
  let current = node;
  let description = node.description;
  let defaultValue: unknown;
  let optional = false;
  for (;;) {
    const def = defOf(current);
    if (def.type === 'default' || def.type === 'prefault') defaultValue ??= def.defaultValue;
    if (def.type === 'optional' || def.type === 'default') optional = true;
    const inner = WRAPPERS.has(def.type) ? def.innerType : def.type === 'pipe' ? def.in : undefined;
    if (!inner) break;
    current = inner;
    description ??= current.description;
  }
  const result: { node: SchemaNode; description?: string; defaultValue?: unknown; optional: boolean } = { node: current, optional };
  if (description !== undefined) result.description = description;
  if (defaultValue !== undefined) result.defaultValue = defaultValue;
  return result;
}

/** Keys of an object node (after unwrapping), or undefined when the node is not an object. */
export function objectShape(node: SchemaNode): Record<string, SchemaNode> | undefined {
  const inner = unwrap(node).node;
  const def = defOf(inner);
  return def.type === 'object' ? def.shape : undefined;
}

/** Keys of the object node that validates `value`: like objectShape, but picks the branch of a union. */
export function objectShapeFor(node: SchemaNode, value: unknown): Record<string, SchemaNode> | undefined {
  const def = defOf(unwrap(node).node);
  if (def.type !== 'union') return objectShape(node);
  const option = chooseUnionOption(def, value);
  return option ? objectShape(option) : undefined;
}

/**
 * The schema node that validates the value at `path`. `data` is the raw input, used to pick the branch of a
 * discriminated union (e.g. `upstream.clientAuth` by its `method`).
 */
export function schemaAt(root: SchemaNode, path: readonly PropertyKey[], data: unknown): SchemaNode | undefined {
  let node: SchemaNode | undefined = root;
  let value: unknown = data;
  for (const key of path) {
    if (!node) return undefined;
    node = childOf(node, key, value);
    value = isRecord(value) || Array.isArray(value) ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  }
  return node;
}

function childOf(node: SchemaNode, key: PropertyKey, value: unknown): SchemaNode | undefined {
  const inner = unwrap(node).node;
  const def = defOf(inner);
  switch (def.type) {
    case 'object':
      return typeof key === 'string' ? def.shape?.[key] : undefined;
    case 'array':
      return def.element;
    case 'record':
      return def.valueType;
    case 'union': {
      const chosen = chooseUnionOption(def, value);
      return chosen ? childOf(chosen, key, value) : undefined;
    }
    default:
      return undefined;
  }
}

/** The union option matching the value's discriminator, or the only object option. */
export function chooseUnionOption(def: NodeDef, value: unknown): SchemaNode | undefined {
  const options = def.options ?? [];
  if (def.discriminator && isRecord(value)) {
    const tag = value[def.discriminator];
    return options.find((option) => {
      const tagNode = objectShape(option)?.[def.discriminator as string];
      return tagNode ? literalValues(tagNode).includes(tag) : false;
    });
  }
  const objects = options.filter((option) => objectShape(option));
  return objects.length === 1 ? objects[0] : undefined;
}

/** The allowed values of an enum or literal node, else []. */
export function literalValues(node: SchemaNode): unknown[] {
  const def = defOf(unwrap(node).node);
  if (def.type === 'enum') return Object.values(def.entries ?? {});
  if (def.type === 'literal') return def.values ?? [];
  return [];
}

/** The base type name of a node after unwrapping: `string`, `number`, `boolean`, `object`, `array`, `union`… */
export const baseType = (node: SchemaNode): string => defOf(unwrap(node).node).type;

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
