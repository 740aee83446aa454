import type { IncomingHttpHeaders } from 'node:http';

/**
 * The tracing interface the parts use; the one implementation (OpenTelemetry, otel-tracing.ts) is loaded only when the
 * `OTEL_*` environment asks for it (load-tracing.ts). With tracing off nothing of OpenTelemetry is imported and
 * every call below is `tracingOff`'s empty function: the request path pays for one property check.
 *
 * Spans never carry tool arguments, results, tokens or header values other than the trace context itself.
 */
/** What the OTLP exporter speaks (`OTEL_EXPORTER_OTLP_PROTOCOL`; gRPC is not offered) and the samplers of `OTEL_TRACES_SAMPLER`. */
export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];
export const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export type SpanAttributes = Record<string, string | number | boolean>;

/** W3C Trace Context as it travels in headers or in an MCP message's `params._meta`. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

export interface ServerSpanStart {
  /** e.g. `tools/call echo` (MCP semantic conventions: `{mcp.method.name} {target}`). */
  name: string;
  attributes: SpanAttributes;
  /** The MCP message's own context (`params._meta`): the parent when valid; the HTTP context becomes a link. */
  messageContext?: TraceCarrier;
}

export interface StepSpan {
  name: string;
  kind: 'internal' | 'client';
  attributes?: SpanAttributes;
}

/** One incoming request's trace: a SERVER span with a span per gateway step beneath it. */
export interface RequestTrace {
  /** Starts the server span (once; later calls do nothing). Steps run before it are recorded beneath it afterwards. */
  begin(start: ServerSpanStart): void;
  readonly begun: boolean;
  /** The trace id (32 hex digits), once begun. */
  readonly traceId: string | undefined;
  /** Runs `run` as a child span; outgoing calls made inside it (fetch, `inject`) carry that span as their parent. */
  step<T>(span: StepSpan, run: () => T | Promise<T>): Promise<T>;
  /** Writes `traceparent` (and `tracestate`) of the current step span into outgoing request headers. */
  inject(headers: Record<string, string>): void;
  /** Ends the server span: the HTTP status, and an error type when the request failed or was refused. */
  end(result: { status: number; errorType?: string; attributes?: SpanAttributes }): void;
}

export interface Tracing {
  readonly enabled: boolean;
  /**
   * `headers` give the HTTP transport's trace context (`traceparent`, `tracestate`); a malformed one starts a new
   * trace. `fallback` names the server span when the request ends before its MCP message was read (a refused token).
   */
  startRequest(headers: IncomingHttpHeaders, startTime: number, fallback: ServerSpanStart): RequestTrace;
  /** A fetch that records a CLIENT span and sends `traceparent` when called inside a traced step; plain otherwise. */
  wrapFetch(fetch: typeof globalThis.fetch): typeof globalThis.fetch;
  /** Exports what is still buffered (shutdown, tests). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

const noRequestTrace: RequestTrace = {
  begin: () => {},
  begun: false,
  traceId: undefined,
  step: async (_span, run) => run(),
  inject: () => {},
  end: () => {},
};

export const tracingOff: Tracing = {
  enabled: false,
  startRequest: () => noRequestTrace,
  wrapFetch: (fetch) => fetch,
  flush: async () => {},
  shutdown: async () => {},
};
