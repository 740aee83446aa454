import type { IncomingHttpHeaders } from 'node:http';
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Link, type Span, type TextMapGetter, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type Sampler, type SpanExporter } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Logger } from 'pino';
import type { OtlpProtocol, RequestTrace, SamplerName, ServerSpanStart, StepSpan, TraceCarrier, Tracing } from './tracing.ts';

/**
 * The OpenTelemetry implementation of tracing.ts: a tracer provider of its own (never the process-wide global one,
 * so an embedding application's tracing and ours do not replace each other), W3C Trace Context in and out, spans
 * batched to an OTLP/HTTP endpoint as protobuf (the OTLP default) or JSON (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`).
 *
 * @see OpenTelemetry semantic conventions for MCP (docs/gen-ai/mcp.md); W3C Trace Context
 */
const propagator = new W3CTraceContextPropagator();
const carrierGetter: TextMapGetter<TraceCarrier | IncomingHttpHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = (carrier as Record<string, unknown>)[key];
    return typeof value === 'string' ? value : undefined;
  },
};
const recordSetter: TextMapSetter<Record<string, string>> = { set: (carrier, key, value) => void (carrier[key] = value) };
const headersSetter: TextMapSetter<Headers> = { set: (carrier, key, value) => carrier.set(key, value) };

const now = (): number => performance.timeOrigin + performance.now();

/** A context carrying the remote parent, or undefined when the carrier has none or a malformed one (a new trace). */
function remoteContext(carrier: TraceCarrier | IncomingHttpHeaders): Context | undefined {
  const extracted = propagator.extract(ROOT_CONTEXT, carrier, carrierGetter);
  return trace.getSpanContext(extracted) === undefined ? undefined : extracted;
}

const errorTypeOf = (error: unknown): string => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : error instanceof Error ? error.name : 'error';
};

/** An export failure in a few words: the HTTP status a collector answered with, else the error's code or name. */
function exportFailure(error: unknown): string {
  const status = (error as { code?: unknown } | null)?.code;
  return typeof status === 'number' ? `collector answered ${status}` : errorTypeOf(error);
}

function failed(span: Span, errorType: string): void {
  span.setAttribute('error.type', errorType);
  span.setStatus({ code: SpanStatusCode.ERROR, message: errorType });
}

interface FinishedStep {
  span: StepSpan;
  start: number;
  end: number;
  errorType?: string;
}

const spanKind = (kind: StepSpan['kind']): SpanKind => (kind === 'client' ? SpanKind.CLIENT : SpanKind.INTERNAL);

/**
 * The server span starts only when the request's MCP message is known: its `params._meta` may name the parent, and
 * the token check runs before the body is read. Steps that ran before are recorded beneath it with their own times.
 */
class OtelRequestTrace implements RequestTrace {
  private server: Span | undefined;
  private serverContext: Context = ROOT_CONTEXT;
  private finished: FinishedStep[] = [];
  private readonly tracer: Tracer;
  private readonly headerContext: Context | undefined;
  private readonly startTime: number;
  private readonly fallback: ServerSpanStart;

  constructor(tracer: Tracer, headers: IncomingHttpHeaders, startTime: number, fallback: ServerSpanStart) {
    this.tracer = tracer;
    this.headerContext = remoteContext(headers);
    this.startTime = startTime;
    this.fallback = fallback;
  }

  get begun(): boolean {
    return this.server !== undefined;
  }

  get traceId(): string | undefined {
    return this.server?.spanContext().traceId;
  }

  begin(start: ServerSpanStart): void {
    if (this.server !== undefined) return;
    const messageParent = start.messageContext === undefined ? undefined : remoteContext(start.messageContext);
    const parent = messageParent ?? this.headerContext ?? ROOT_CONTEXT;
    // MCP conventions: the message's context is the parent; the transport's, when it differs, is kept as a link.
    const headerSpan = this.headerContext === undefined ? undefined : trace.getSpanContext(this.headerContext);
    const links: Link[] = messageParent !== undefined && headerSpan !== undefined ? [{ context: headerSpan }] : [];
    this.server = this.tracer.startSpan(start.name, { kind: SpanKind.SERVER, attributes: start.attributes, startTime: this.startTime, links }, parent);
    this.serverContext = trace.setSpan(parent, this.server);
    for (const step of this.finished) {
      const span = this.tracer.startSpan(step.span.name, { kind: spanKind(step.span.kind), attributes: step.span.attributes, startTime: step.start }, this.serverContext);
      if (step.errorType !== undefined) failed(span, step.errorType);
      span.end(step.end);
    }
    this.finished = [];
  }

  async step<T>(step: StepSpan, run: () => T | Promise<T>): Promise<T> {
    if (this.server === undefined) return this.stepBeforeBegin(step, run);
    const span = this.tracer.startSpan(step.name, { kind: spanKind(step.kind), attributes: step.attributes }, this.serverContext);
    try {
      return await context.with(trace.setSpan(this.serverContext, span), run);
    } catch (error) {
      failed(span, errorTypeOf(error));
      throw error;
    } finally {
      span.end();
    }
  }

  private async stepBeforeBegin<T>(step: StepSpan, run: () => T | Promise<T>): Promise<T> {
    const start = now();
    let errorType: string | undefined;
    try {
      return await run();
    } catch (error) {
      errorType = errorTypeOf(error);
      throw error;
    } finally {
      this.finished.push({ span: step, start, end: now(), ...(errorType === undefined ? {} : { errorType }) });
    }
  }

  inject(headers: Record<string, string>): void {
    // Whatever context the client sent is replaced: the backend's parent is the gateway's span.
    delete headers.traceparent;
    delete headers.tracestate;
    const active = context.active();
    propagator.inject(trace.getSpan(active) === undefined ? this.serverContext : active, headers, recordSetter);
  }

  end(result: { status: number; errorType?: string; attributes?: Record<string, string | number | boolean> }): void {
    this.begin(this.fallback);
    const server = this.server;
    if (server === undefined) return;
    server.setAttribute('http.response.status_code', result.status);
    if (result.attributes) server.setAttributes(result.attributes);
    if (result.errorType !== undefined) {
      server.setAttribute('error.type', result.errorType);
      // A refusal (4xx, a denied tool call) is the gateway doing its job; only a failure marks the span an error.
      if (result.status >= 500) server.setStatus({ code: SpanStatusCode.ERROR, message: result.errorType });
    }
    server.end();
  }
}

/** The samplers of OTEL_TRACES_SAMPLER (validated by the loader, src/app/load-tracing.ts). */
function samplerFor(name: SamplerName, ratio: number): Sampler {
  const samplers: Record<SamplerName, () => Sampler> = {
    always_on: () => new AlwaysOnSampler(),
    always_off: () => new AlwaysOffSampler(),
    traceidratio: () => new TraceIdRatioBasedSampler(ratio),
    parentbased_always_on: () => new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    parentbased_always_off: () => new ParentBasedSampler({ root: new AlwaysOffSampler() }),
    parentbased_traceidratio: () => new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
  };
  return samplers[name]();
}

async function exporterFor(protocol: OtlpProtocol, url: string): Promise<SpanExporter> {
  return protocol === 'http/json'
    ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter({ url })
    : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter({ url });
}

/** Longer than any value the gateway sets itself (a backend URL without its query); client values are cut shorter. */
const MAX_ATTRIBUTE_LENGTH = 2048;

let contextManagerSet = false;

/** Trace context follows async calls (a broker's token request made inside a step): one context manager per process. */
function ensureContextManager(): void {
  if (contextManagerSet) return;
  // false when the embedding application registered its own, which serves as well.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  contextManagerSet = true;
}

export interface OtelTracingOptions {
  endpoint: string;
  protocol: OtlpProtocol;
  sampler: SamplerName;
  /** OTEL_TRACES_SAMPLER_ARG, for the ratio samplers. */
  ratio: number;
  serviceName: string;
  logger: Logger;
}

export async function createOtelTracing(options: OtelTracingOptions): Promise<Tracing> {
  const { endpoint, protocol, serviceName, logger } = options;
  const exporter = await exporterFor(protocol, endpoint);
  const resource = detectResources({ detectors: [envDetector] }).merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }));
  const provider = new TracerProvider({
    resource,
    sampler: samplerFor(options.sampler, options.ratio),
    // The SDK keeps attribute values whole by default; with up to 2048 spans queued, no value may be megabytes.
    spanLimits: { attributeValueLengthLimit: MAX_ATTRIBUTE_LENGTH },
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  });
  ensureContextManager();
  const tracer = provider.getTracer('gatehouse');

  function wrapFetch(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
    return async function tracedFetch(input, init) {
      const active = context.active();
      if (trace.getSpan(active) === undefined) return fetch(input, init);
      const url = new URL(input instanceof Request ? input.url : String(input));
      const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
      // HTTP client conventions; the URL without its query (a query may carry a code or a state).
      const span = tracer.startSpan(
        method,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'http.request.method': method,
            'server.address': url.hostname,
            'server.port': Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
            'url.full': `${url.origin}${url.pathname}`,
          },
        },
        active,
      );
      const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
      propagator.inject(trace.setSpan(active, span), headers, headersSetter);
      try {
        const response = await fetch(input, { ...init, headers });
        span.setAttribute('http.response.status_code', response.status);
        if (response.status >= 400) failed(span, String(response.status));
        return response;
      } catch (error) {
        failed(span, errorTypeOf(error));
        throw error;
      } finally {
        span.end();
      }
    };
  }

  return {
    enabled: true,
    startRequest: (headers, startTime, fallback) => new OtelRequestTrace(tracer, headers, startTime, fallback),
    wrapFetch,
    flush: () => provider.forceFlush(),
    shutdown: async () => {
      // What failed, not the error itself: an OTLP export error carries the collector's whole answer (`data`).
      await provider.shutdown().catch((error: unknown) => logger.warn({ error: exportFailure(error) }, 'spans could not be exported at shutdown'));
    },
  };
}
