import type { ServerResponse } from 'node:http';

/**
 * How many streams each user holds open on each route, on this replica (`routes[].rateLimit.streamsPerUser`). A
 * stream — a Streamable HTTP GET, a legacy `/sse` — holds two sockets for up to the idle timeout, and the per-minute
 * budget does not bound how many are open at once: one user held thousands. A place is taken when the request is
 * admitted, before the backend is asked (so requests arriving together cannot all pass while none is counted yet),
 * and given back when the client's response closes, however the request ended.
 */
export interface StreamBudget {
  /** Takes a place for `subject` on `route`, given back when `response` closes; false when `limit` are taken. */
  admit(route: string, subject: string, limit: number, response: ServerResponse): boolean;
  /** Places taken (tests, metrics). */
  open(route: string, subject: string): number;
}

export function createStreamBudget(): StreamBudget {
  const taken = new Map<string, number>();
  // A route path holds no space (config schema), so the first space ends it whatever the subject holds.
  const keyOf = (route: string, subject: string) => `${route} ${subject}`;
  return {
    admit(route, subject, limit, response) {
      const key = keyOf(route, subject);
      const count = taken.get(key) ?? 0;
      if (count >= limit) return false;
      taken.set(key, count + 1);
      response.once('close', () => {
        const left = (taken.get(key) ?? 1) - 1;
        if (left > 0) taken.set(key, left);
        else taken.delete(key);
      });
      return true;
    },
    open(route, subject) {
      return taken.get(keyOf(route, subject)) ?? 0;
    },
  };
}
