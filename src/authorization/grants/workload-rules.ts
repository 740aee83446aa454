import type { JWTPayload } from 'jose';
import type { WorkloadIdentityConfig } from '../../config/schema.ts';

/**
 * The claim rules of a trusted workload issuer: patterns where `*` stands for any run of characters and everything
 * else is literal, anchored at both ends (`repo:acme/*` matches `repo:acme/deploy:ref:refs/heads/main`, never
 * `repo:acme-evil/x`). A nested claim is named by its path with `/` (`kubernetes.io/namespace`). Only string claims
 * match: a pattern never matches a missing claim, a number or an object.
 */
export interface WorkloadRuleMatch {
  clientId: string;
  scopes: string[];
}

type Rule = WorkloadIdentityConfig['rules'][number];

export function patternMatches(pattern: string, value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const source = pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${source}$`, 's').test(value);
}

function claimAt(claims: JWTPayload, path: string): unknown {
  let value: unknown = claims;
  for (const segment of path.split('/')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, segment)) return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

function ruleMatches(rule: Rule, claims: JWTPayload): boolean {
  if (rule.subject !== undefined && !patternMatches(rule.subject, claims.sub)) return false;
  return Object.entries(rule.claims).every(([path, pattern]) => patternMatches(pattern, claimAt(claims, path)));
}

/** The first rule whose subject and claims all match (the order in the configuration is the precedence). */
export function matchWorkloadRule(rules: readonly Rule[], claims: JWTPayload): WorkloadRuleMatch | undefined {
  const rule = rules.find((candidate) => ruleMatches(candidate, claims));
  return rule === undefined ? undefined : { clientId: rule.clientId, scopes: rule.scopes };
}
