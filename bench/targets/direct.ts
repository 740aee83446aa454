import type { BackendUrls } from '../backends/main.ts';
import type { Target } from './target.ts';

/** No proxy: the load goes straight to the backend (the reference every ratio is taken against). */
export function directTarget(urls: BackendUrls): Target {
  return {
    name: 'direct',
    url: (backend) => (backend === 'legacy' ? `${urls.legacy}/sse` : urls[backend]),
    headers: () => ({}),
    pids: () => [],
    stop: async () => {},
  };
}
