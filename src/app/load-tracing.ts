import type { Logger } from 'pino';
import { displayUrl } from '../config/display-url.ts';
import { GatehouseError } from '../errors/internal-errors.ts';
import { OTLP_PROTOCOLS, SAMPLERS, tracingOff, type Tracing } from '../observability/tracing.ts';

/**
 * Tracing is on when the standard OpenTelemetry environment names an OTLP endpoint for traces, and not switched off
 * (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`). Off, the SDK is never imported: a gateway that does not
 * trace loads no OpenTelemetry code and its request path stays as it was. A value Gatehouse cannot honour (gRPC, an
 * unknown sampler) stops the start with the variable named, rather than tracing differently from what was asked.
 *
 * @see OpenTelemetry specification, SDK environment variables; OTLP exporter configuration
 */
export type TracingEnv = Readonly<Record<string, string | undefined>>;

export function tracesEndpoint(env: TracingEnv): string | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const exporters = env.OTEL_TRACES_EXPORTER?.split(',').map((name) => name.trim().toLowerCase());
  if (exporters !== undefined && !exporters.includes('otlp')) return undefined;
  const signal = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (signal) return signal;
  // The general endpoint is a base: the signal's path is appended (spec: "Endpoint URLs for OTLP/HTTP").
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  return base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  const found = allowed.find((candidate) => candidate === value);
  if (found === undefined) throw new GatehouseError('GH_USAGE', `${name}=${value} is not supported: use ${allowed.join(', ')}`);
  return found;
}

export async function loadTracing(env: TracingEnv, logger: Logger): Promise<Tracing> {
  const endpoint = tracesEndpoint(env);
  if (endpoint === undefined) return tracingOff;
  const protocolVariable = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = oneOf(protocolVariable, (env[protocolVariable] || 'http/protobuf').trim().toLowerCase(), OTLP_PROTOCOLS);
  const sampler = oneOf('OTEL_TRACES_SAMPLER', (env.OTEL_TRACES_SAMPLER || 'parentbased_always_on').trim().toLowerCase(), SAMPLERS);
  const argument = Number(env.OTEL_TRACES_SAMPLER_ARG ?? '1');
  const ratio = Number.isFinite(argument) && argument >= 0 && argument <= 1 ? argument : 1;
  const serviceName = env.OTEL_SERVICE_NAME?.trim() || 'gatehouse';
  const { createOtelTracing } = await import('../observability/otel-tracing.ts');
  const tracing = await createOtelTracing({ endpoint, protocol, sampler, ratio, serviceName, logger });
  // A collector's key may ride in the endpoint's user info or query: the log shows neither.
  logger.info({ endpoint: displayUrl(endpoint), protocol, sampler, serviceName }, 'OpenTelemetry tracing on');
  return tracing;
}
