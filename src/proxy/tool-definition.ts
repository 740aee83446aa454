import { createHash } from 'node:crypto';
import { foldedName, memberSpellings } from '../protocol/duplicate-members.ts';
import { canonicalJson } from './canonical-json.ts';

/**
 * What a tool is, for pinning: the fields a model reads or that decide what a call may carry. RFC 8785 canonical
 * JSON makes the hash independent of key order and number spelling, so only a real change is a change.
 *
 * @see RFC 8785 (JSON Canonicalization Scheme)
 */
export interface ToolDefinition {
  name: string;
  hash: string;
  canonical: string;
}

const PINNED_FIELDS = ['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations'] as const;
const PINNED_SPELLINGS = memberSpellings(PINNED_FIELDS);

/** The pinned view of one entry of a `tools/list` result; undefined for an entry that is not a named tool. */
export function toolDefinition(entry: unknown): ToolDefinition | undefined {
  if (!entry || typeof entry !== 'object') return undefined;
  const tool = entry as Record<string, unknown>;
  if (typeof tool.name !== 'string') return undefined;
  const pinned: Record<string, unknown> = {};
  for (const field of PINNED_FIELDS) if (tool[field] !== undefined) pinned[field] = tool[field];
  // A pinned field in another case (`Description`) is that field to a case-insensitive client (Go's encoding/json
  // reads it, the last of the two, as the description): it is part of the definition, so adding one is a change.
  for (const key of Object.keys(tool)) {
    const field = PINNED_SPELLINGS.get(foldedName(key));
    if (field !== undefined && field !== key) pinned[key] = tool[key];
  }
  const canonical = canonicalJson(pinned);
  return { name: tool.name, canonical, hash: createHash('sha256').update(canonical).digest('base64url') };
}
