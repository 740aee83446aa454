import type { FastifyReply } from 'fastify';
import type { ProxyMetrics } from './proxy-metrics.ts';

export type StreamTransport = 'streamable-http' | 'sse';

/**
 * Counts an SSE stream relayed to a client in `gatehouse_open_streams`: up once when the stream response starts (the
 * relay pipes the stream into the client's response, which also sends its headers), down once when that response
 * closes. `close` fires exactly once however the stream ends — completed, client gone, backend closed or failed,
 * idle timeout, connections cut at shutdown — so the gauge cannot drift. A stream that never starts (refused,
 * failed before its headers, client gone first) is never counted: there would be no `close` to bring it back down.
 */
export function trackOpenStream(
  reply: FastifyReply,
  metrics: ProxyMetrics | undefined,
  labels: { route: string; transport: StreamTransport },
): void {
  const response = reply.raw;
  if (metrics === undefined) return;
  response.on('pipe', () => {
    if (response.closed || response.destroyed) return;
    metrics.streamOpened(labels);
    response.on('close', () => metrics.streamClosed(labels));
  });
}
