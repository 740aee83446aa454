/**
 * Opens a legacy HTTP+SSE session (the `endpoint` event, then `initialize`) and returns its message URL; the stream
 * stays open and is drained until `controller` aborts. The message URL is resolved against the stream's URL, as
 * a client does: through a plain proxy the backend's `/messages?sessionId=…` lands on the proxy's `/messages` route.
 */
export async function openLegacySession(sseUrl: string, headers: Record<string, string>, controller: AbortController): Promise<string> {
  const response = await fetch(sseUrl, { headers: { ...headers, accept: 'text/event-stream' }, signal: controller.signal });
  if (response.status !== 200 || !response.body) throw new Error(`legacy SSE stream at ${sseUrl}: HTTP ${response.status}`);
  const reader = response.body.getReader();
  const endpointEvent = /event: endpoint\r?\ndata: (\S+)/;
  let text = '';
  while (!endpointEvent.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`legacy SSE stream at ${sseUrl} ended before its endpoint event`);
    text += Buffer.from(value).toString();
  }
  const endpoint = new URL(endpointEvent.exec(text)![1]!, sseUrl).href;
  void (async () => {
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return;
  })();
  const post = async (body: unknown) => {
    const answer = await fetch(endpoint, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await answer.body?.cancel();
    if (answer.status !== 202) throw new Error(`legacy message POST to ${endpoint}: HTTP ${answer.status}`);
  };
  await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return endpoint;
}
