import type { EndedGrant } from '../grants/end-grant.ts';
import { GRANT_END_METHOD, type AuditRecord } from '../records/audit.ts';
import type { Clock } from '../runtime/clock.ts';
import type { ProtectedResources } from './protected-resources.ts';

/**
 * The audit record of a grant's end, whichever of its paths ended it (src/grants/grant-end-reason.ts): a reused
 * refresh token (the theft signal), a code redeemed twice, a client's RFC 7009 revocation, an operator's or the user's
 * decision, a revoked client, the upstream session ending. Requests are audited as they are answered; without this
 * the trail showed a user's calls stop with nothing saying why, and an operator asked "who ended this, and when" had
 * only the log. Route: the MCP server the grant was for (`/token` when it names none: an app-only token recorded before its resource was).
 */
export function grantEndAudit(ended: EndedGrant, resources: ProtectedResources, time: number): AuditRecord {
  const route = ended.resources.map((resource) => resources.find(resource)?.route.path ?? routeByPath(resources, resource)).find((path) => path !== undefined);
  return {
    time,
    ...(ended.user === undefined ? {} : { user: ended.user }),
    ...(ended.client === undefined ? {} : { client: ended.client }),
    route: route ?? '/token',
    method: GRANT_END_METHOD,
    reason: ended.reason,
    outcome: 'allowed',
    status: 200,
    durationMs: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
}

/**
 * A route by the path of the resource alone, for the CLI run beside a gateway whose public URL it does not know (a demo
 * started with `--port`: the CLI's URL is the default one), which recorded every grant's end under `/token`. The
 * record's route is a label for the trail, not a decision: the path is enough to name it.
 */
function routeByPath(resources: ProtectedResources, resource: string): string | undefined {
  const path = URL.parse(resource)?.pathname;
  return path === undefined ? undefined : resources.all.find((entry) => entry.route.path === path)?.route.path;
}

/** The `onEnded` of a grant-ending function (src/grants/end-grant.ts) that audits each end: the gateway's and the CLI's. */
export function auditGrantEnds(resources: ProtectedResources, clock: Clock, recordAudit: (entry: AuditRecord) => void): (ended: EndedGrant) => void {
  return (ended) => recordAudit(grantEndAudit(ended, resources, clock.now()));
}
