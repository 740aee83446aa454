import { request, Agent, type ClientRequest } from 'node:http';

/**
 * Opens `count` concurrent SSE streams (GET, `Accept: text/event-stream`) and keeps them open until `close()`.
 * Opening is paced in batches so the listen backlog is not the thing being measured.
 */
export interface OpenStreams {
  opened: number;
  failed: number;
  close(): void;
}

export async function openSseStreams(url: string, headers: Record<string, string>, count: number, deadlineMs: number): Promise<OpenStreams> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const requests: ClientRequest[] = [];
  let opened = 0;
  let failed = 0;
  const deadline = Date.now() + deadlineMs;
  const openOne = () =>
    new Promise<void>((resolve) => {
      const req = request(url, { agent, headers: { ...headers, accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) failed++;
        // Resolve on the first bytes: the stream is established end to end through the gateway.
        res.once('data', () => {
          if (res.statusCode === 200) opened++;
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('error', () => {
        failed++;
        resolve();
      });
      req.end();
      requests.push(req);
    });
  for (let started = 0; started < count && Date.now() < deadline; started += 250) {
    await Promise.all(Array.from({ length: Math.min(250, count - started) }, openOne));
  }
  return {
    opened,
    failed,
    close() {
      for (const req of requests) req.destroy();
      agent.destroy();
    },
  };
}
