/**
 * Whether a cached token (a downstream token, the user's upstream access token) is still worth using: renewed
 * `skewMs` before it expires — or at half its life when it lives less than twice that, else a token shorter-lived
 * than the skew was never fresh and every call went to the identity provider. A token without `obtainedAt` (stored
 * before it was kept) is judged by the skew alone.
 */
export function isFreshToken(token: { expiresAt: number; obtainedAt?: number | undefined }, skewMs: number, now: number): boolean {
  const skew = token.obtainedAt === undefined ? skewMs : Math.min(skewMs, (token.expiresAt - token.obtainedAt) / 2);
  return token.expiresAt - skew > now;
}
