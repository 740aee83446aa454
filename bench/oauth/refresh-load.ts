import { Pool } from 'undici';

/**
 * Refresh-token grants as fast as they come back: `chains` concurrent clients, each holding its own grant and
 * sending its next refresh with the token the previous one returned (every refresh rotates the token, so a chain
 * cannot be parallelised or replayed). Runs for `durationSeconds`; returns grants per second and failures.
 */
export interface RefreshChain {
  clientId: string;
  refreshToken: string;
}

export async function runRefreshLoad(origin: string, chains: RefreshChain[], durationSeconds: number): Promise<{ perSecond: number; total: number; failures: number }> {
  const pool = new Pool(origin, { connections: chains.length });
  const started = performance.now();
  const deadline = started + durationSeconds * 1000;
  let total = 0;
  let failures = 0;
  const drive = async (chain: RefreshChain) => {
    while (performance.now() < deadline) {
      const { statusCode, body } = await pool.request({
        method: 'POST',
        path: '/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: chain.refreshToken, client_id: chain.clientId }).toString(),
      });
      const answer = (await body.json()) as { refresh_token?: string };
      if (statusCode !== 200 || !answer.refresh_token) {
        failures++;
        return;
      }
      chain.refreshToken = answer.refresh_token;
      total++;
    }
  };
  await Promise.all(chains.map(drive));
  const elapsed = (performance.now() - started) / 1000;
  await pool.close();
  return { perSecond: total / elapsed, total, failures };
}
