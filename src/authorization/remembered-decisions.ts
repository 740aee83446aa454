/**
 * Consent decisions a browser remembers (in a sealed cookie), each bound to the exact client id, redirect URI and
 * resource. An approval covers a request when it approved at least the requested scopes; a later request for more
 * scopes is asked again. Denials are remembered so a client cannot re-prompt the user in a loop.
 */
export interface RememberedDecision {
  clientId: string;
  redirectUri: string;
  resource: string;
  scopes: string[];
  /** Epoch ms. */
  expiresAt: number;
}

/** Bounded so the cookie stays well under browser limits (~4 KB) however many clients a user approves. */
const MAX_REMEMBERED = 12;

export interface ConsentRequest {
  clientId: string;
  redirectUri: string;
  resource: string;
  scopes: string[];
}

const sameTarget = (decision: RememberedDecision, request: ConsentRequest) =>
  decision.clientId === request.clientId && decision.redirectUri === request.redirectUri && decision.resource === request.resource;

export function findCovering(decisions: RememberedDecision[] | undefined, request: ConsentRequest, now: number): RememberedDecision | undefined {
  return (decisions ?? []).find(
    (decision) => decision.expiresAt > now && sameTarget(decision, request) && request.scopes.every((scope) => decision.scopes.includes(scope)),
  );
}

export function findForTarget(decisions: RememberedDecision[] | undefined, request: ConsentRequest, now: number): RememberedDecision | undefined {
  return (decisions ?? []).find((decision) => decision.expiresAt > now && sameTarget(decision, request));
}

/** Adds (or replaces) the decision for this target, dropping expired ones and the oldest beyond the bound. */
export function remember(decisions: RememberedDecision[] | undefined, decision: RememberedDecision, now: number): RememberedDecision[] {
  const kept = (decisions ?? []).filter((existing) => existing.expiresAt > now && !sameTarget(existing, decision));
  return [...kept, decision].slice(-MAX_REMEMBERED);
}
