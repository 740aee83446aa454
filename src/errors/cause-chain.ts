/**
 * An error and what it wraps, outermost first: each object along `cause`, at most `depth` of them. Libraries wrap
 * what went wrong (openid-client's "something went wrong" around a JSON parse error, our UpstreamError around
 * jose's), so the parts that read an error for its meaning — a network failure, the IdP's OAuth error, a claims
 * challenge, what to log — all look along the chain; this is that walk, bounded so that a cycle ends it.
 */
export function causeChain(error: unknown, depth = 5): Array<Record<string, unknown>> {
  const layers: Array<Record<string, unknown>> = [];
  for (let layer: unknown = error; typeof layer === 'object' && layer !== null && layers.length < depth; layer = (layer as { cause?: unknown }).cause) {
    layers.push(layer as Record<string, unknown>);
  }
  return layers;
}
