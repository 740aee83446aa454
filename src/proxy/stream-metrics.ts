import type { FastifyReply } from 'fastify';
import type { GatehouseMetrics } from '../admin/metrics.ts';

export type StreamTransport = 'streamable-http' | 'sse';

/**
 * Counts an SSE stream relayed to a client in `gatehouse_open_streams`, from now until the client's response closes.
 * The response's `close` event fires exactly once however the stream ends (completed, client gone, backend error,
 * idle timeout), so the gauge cannot drift. A response that is already closed is never counted: its `close` has
 * passed and would never bring the gauge back down.
 */
export function trackOpenStream(
  reply: FastifyReply,
  metrics: GatehouseMetrics | undefined,
  labels: { route: string; transport: StreamTransport },
): void {
  const response = reply.raw;
  if (metrics === undefined || response.closed || response.destroyed) return;
  metrics.streamOpened(labels);
  response.once('close', () => metrics.streamClosed(labels));
}
