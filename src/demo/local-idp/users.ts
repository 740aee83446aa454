import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Random } from '../../runtime/random.ts';

/**
 * DEVELOPMENT ONLY — the local identity provider's test users. Ids look like Entra object ids so the rest of the
 * system sees the same shapes as in production. The flags let tests make the IdP answer like Entra does when policy
 * demands more of the user.
 */
export const localUserSchema = z
  .object({
    id: z.string().min(1).describe('Object id (`oid`, also the `sub`).'),
    username: z.string().min(1).describe('What the user types on the sign-in form.'),
    password: z.string().min(1),
    name: z.string().min(1),
    email: z.string().min(3),
    givenName: z.string().optional(),
    surname: z.string().optional(),
    jobTitle: z.string().optional(),
    groups: z.array(z.string()).default([]),
    /** Token requests for this user's downstream tokens answer `interaction_required` (AADSTS50076, MFA). */
    requireInteraction: z.boolean().default(false),
    /** Downstream token requests answer `invalid_grant` AADSTS65001 (consent missing). */
    requireConsent: z.boolean().default(false),
    /**
     * Downstream access needs MFA (Conditional Access): on-behalf-of answers AADSTS50076 with a `claims` challenge
     * unless the user's token says MFA was done; the sign-in page asks for a one-time code when `claims` asks for it.
     */
    requireMfa: z.boolean().default(false),
  })
  .strict();

export type LocalUser = z.infer<typeof localUserSchema>;
export type LocalUserInput = z.input<typeof localUserSchema>;

/** A fixed tenant id for everything the local IdP issues (`tid`). */
export const LOCAL_TENANT_ID = '00000000-0000-4000-8000-00000000c0de';

/** Adele Vance and Alex Wilber, the users of Microsoft's demo tenants; passwords are new each start. */
export function defaultUsers(random: Random): LocalUser[] {
  return [
    {
      id: '5f0b9a4e-9d1c-4c8e-a3f1-6f0d1b2c3a01',
      username: 'adele',
      password: random.token(12),
      name: 'Adele Vance',
      givenName: 'Adele',
      surname: 'Vance',
      jobTitle: 'Retail Manager',
      email: 'adele.vance@gatehouse.test',
      groups: ['gatehouse-users', 'retail'],
      requireInteraction: false,
      requireConsent: false,
      requireMfa: false,
    },
    {
      id: '8c2d7e61-3b4a-4f9e-b0c5-2e1f4a6d7b02',
      username: 'alex',
      password: random.token(12),
      name: 'Alex Wilber',
      givenName: 'Alex',
      surname: 'Wilber',
      jobTitle: 'Marketing Assistant',
      email: 'alex.wilber@gatehouse.test',
      groups: ['gatehouse-users', 'gatehouse-admins'],
      requireInteraction: false,
      requireConsent: false,
      requireMfa: false,
    },
  ];
}

/** A JSON array of users; validated so a typo fails at start with the field named. */
export function loadUsersFile(path: string): LocalUser[] {
  const parsed = z.array(localUserSchema).min(1).safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw new Error(`local identity provider users file ${path}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
