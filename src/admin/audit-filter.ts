import { z } from 'zod';
import type { AccountRecord } from '../records/account.ts';
import { AUDIT_OUTCOMES } from '../records/audit.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { AuditQuery } from './audit-query.ts';

/**
 * The console's audit filter (`GET /admin/audit?user=&client=&tool=&outcome=&window=`): validated at the edge, and a
 * bad one answered with the styled 400 page naming the field — never a 500, never the value echoed into a log.
 * People type what they see on the pages (a name or an e-mail, an app's name), so those are resolved to the subject
 * and client id the audit records carry; an exact subject or client id works too.
 */
export const AUDIT_WINDOWS = { '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 } as const;
export type AuditWindow = keyof typeof AUDIT_WINDOWS;
export const DEFAULT_AUDIT_WINDOW: AuditWindow = '24h';
const WINDOW_NAMES = Object.keys(AUDIT_WINDOWS) as [AuditWindow, ...AuditWindow[]];

// A field given twice (`?user=a&user=b`) arrives as an array: said in the form's words, not the validator's.
const text = (max: number) => z.string({ error: 'given once, as text' }).trim().max(max, `at most ${max} characters`).optional();
const filterSchema = z.strictObject({
  user: text(512),
  client: text(2048),
  tool: text(256),
  outcome: z.enum(['', ...AUDIT_OUTCOMES], { error: `choose one of ${AUDIT_OUTCOMES.join(', ')}` }).optional(),
  window: z.enum(WINDOW_NAMES, { error: `choose one of ${WINDOW_NAMES.join(', ')}` }).optional(),
});

/** What the form shows back: the words as typed, and the window. */
export interface AuditFilter {
  user?: string;
  client?: string;
  tool?: string;
  outcome?: NonNullable<AuditQuery['outcome']>;
  window: AuditWindow;
}

export function parseAuditFilter(query: unknown): AuditFilter {
  const parsed = filterSchema.safeParse(query);
  if (!parsed.success) {
    // An unknown parameter is not named back: its name is the requester's text, and the page would show any
    // sentence put there under Gatehouse's name.
    const problems = parsed.error.issues.map((issue) =>
      issue.code === 'unrecognized_keys' ? `unknown parameter; the filter takes ${Object.keys(filterSchema.shape).join(', ')}` : `${issue.path.join('.') || 'filter'}: ${issue.message}`,
    );
    throw new ProtocolError('invalid_request', `The tool-call filter is not valid (${problems.join('; ')}).`, { nextStep: { text: 'Change the filter and try again.', link: { path: '/admin/audit', label: 'Tool calls' } } });
  }
  const { user, client, tool, outcome, window } = parsed.data;
  return {
    window: window ?? DEFAULT_AUDIT_WINDOW,
    ...(user ? { user } : {}),
    ...(client ? { client } : {}),
    ...(tool ? { tool } : {}),
    ...(outcome ? { outcome } : {}),
  };
}

/** The people and apps the console knows, to turn what was typed into what the records hold. */
export interface AuditDirectory {
  accounts: ReadonlyMap<string, AccountRecord>;
  /** Client id → display name. */
  clientNames: ReadonlyMap<string, string>;
}

const same = (a: string | undefined, b: string): boolean => a !== undefined && a.toLowerCase() === b.toLowerCase();

/**
 * The subject a typed user means: an exact subject, else the one account whose e-mail or name it is. Two people of
 * one name (they exist) are not guessed between: the page says so, where an empty result would say "no calls".
 */
export function resolveUser(typed: string, accounts: AuditDirectory['accounts']): string {
  if (accounts.has(typed)) return typed;
  const matches = [...accounts.values()].filter((account) => same(account.email, typed) || same(account.name, typed));
  if (matches.length > 1) {
    throw new ProtocolError('invalid_request', `${matches.length} people match that user.`, { nextStep: { text: 'Type an e-mail address, or pick one from the list.', link: { path: '/admin/audit', label: 'Tool calls' } } });
  }
  return matches[0]?.subject ?? typed;
}

/**
 * The clients a typed client means: an exact id, else every client of that name. Anyone may register a client under
 * a name already taken: choosing none made a filter by an app's name silently empty the moment someone did.
 */
export function resolveClient(typed: string, clientNames: AuditDirectory['clientNames']): string | string[] {
  if (clientNames.has(typed)) return typed;
  const matches = [...clientNames].filter(([, name]) => same(name, typed)).map(([id]) => id);
  return matches.length === 0 ? typed : matches.length === 1 ? matches[0]! : matches;
}

export function auditQueryFor(filter: AuditFilter, directory: AuditDirectory, now: number, limit: number): AuditQuery {
  return {
    limit,
    since: now - AUDIT_WINDOWS[filter.window],
    until: now + 1,
    ...(filter.user === undefined ? {} : { user: resolveUser(filter.user, directory.accounts) }),
    ...(filter.client === undefined ? {} : { client: resolveClient(filter.client, directory.clientNames) }),
    ...(filter.tool === undefined ? {} : { tool: filter.tool }),
    ...(filter.outcome === undefined ? {} : { outcome: filter.outcome }),
  };
}
