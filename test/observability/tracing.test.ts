import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { SpanKind } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { TokenBroker } from '../../src/broker/types.ts';
import { loadTracing, tracesEndpoint } from '../../src/app/load-tracing.ts';
import { tracingOff, type Tracing } from '../../src/observability/tracing.ts';
import { BEFORE_MESSAGE } from '../../src/proxy/exchange.ts';
import { httpRouteSteps } from '../../src/proxy/http-route.ts';
import { legacySseMessageSteps, legacySseStreamSteps } from '../../src/proxy/legacy-sse.ts';
import { streamableHttpSteps } from '../../src/proxy/streamable-http.ts';
import { startDemo } from '../support/demo-harness.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { startOtlpReceiver, SPAN_KIND, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.ts';
import { captureLogs } from '../support/server-context.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from '../proxy/harness.ts';

/**
 * OpenTelemetry tracing (issue 15, part 3) against a real OTLP/HTTP receiver in the test: a tool call whose client
 * sends W3C Trace Context comes out as client span → gateway server span → a span per gateway step → the backend-call
 * span → the backend, which receives the gateway's context in `traceparent`; the broker's token request carries it
 * too. Named and attributed per the MCP semantic conventions, with no argument values and no tokens.
 */
const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const SECRET_ARGUMENT = 'argument-value-that-must-not-be-traced';
const keyring = createTestKeyring();

let receiver: OtlpReceiver;
let tracing: Tracing;
let backend: McpBackend;
let legacyBackend: McpBackend;
let tokenEndpoint: Server;
let tokenRequests: IncomingHttpHeaders[];
let gateway: TestGateway;

before(async () => {
  receiver = await startOtlpReceiver();
  tracing = await loadTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: 'gatehouse-under-test' }, captureLogs().logger);
  backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
  legacyBackend = await startMcpBackend({ kind: 'v1-sse' });
  tokenRequests = [];
  tokenEndpoint = createServer((request, response) => {
    tokenRequests.push(request.headers);
    request.resume().on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"downstream-token","expires_in":60}'));
  });
  await new Promise<void>((resolve) => tokenEndpoint.listen(0, '127.0.0.1', resolve));
  // The broker's on-behalf-of request goes out through the app's fetch, which tracing wraps (assemble-parts.ts).
  const brokerFetch = tracing.wrapFetch(fetch);
  const broker: TokenBroker = {
    async getDownstreamToken() {
      const response = await brokerFetch(`http://127.0.0.1:${(tokenEndpoint.address() as AddressInfo).port}/token?code=not-in-the-span`, { method: 'POST', body: 'grant_type=obo' });
      const { access_token: accessToken } = (await response.json()) as { access_token: string };
      return { accessToken, expiresAt: Date.now() + 60_000, scopes: ['User.Read'] };
    },
  };
  gateway = await startTestGateway({
    keyring,
    broker,
    tracing,
    config: {
      routes: [
        { path: '/mcp', backend: backend.url },
        { path: '/obo', backend: backend.url, identity: { mode: 'obo', downstream: 'graph' } },
        { path: '/legacy', backend: legacyBackend.url, transports: ['sse'] },
      ],
    },
  });
});
after(async () => {
  await gateway?.close();
  await tracing?.shutdown();
  await backend?.close();
  await legacyBackend?.close();
  await new Promise((resolve) => tokenEndpoint?.close(resolve));
  await receiver?.close();
});

const token = (path: string) => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path });

/** The spans of one trace, once the exporter has sent them (it batches: flushed here). */
async function traceOf(traceId: string): Promise<ReceivedSpan[]> {
  await tracing.flush();
  return receiver.spans.filter((span) => span.traceId === traceId);
}

/** The gateway's server span for a JSON-RPC request id (each test uses its own id). */
async function serverSpan(requestId: number): Promise<ReceivedSpan> {
  await tracing.flush();
  const span = receiver.spans.find((candidate) => candidate.kind === SPAN_KIND.server && candidate.attributes['jsonrpc.request.id'] === String(requestId));
  assert.ok(span, `a server span for request ${requestId}`);
  return span;
}

const backendTraceparents = () => backend.seenHeaders.map((headers) => headers.traceparent).filter((value) => value !== undefined);

describe('OpenTelemetry tracing of a tool call', () => {
  it('shows client span → gateway spans → backend span in one trace, per the MCP conventions, with no arguments or tokens', async () => {
    const access = await token('/mcp');
    const response = await mcpPost(`${gateway.url}/mcp`, access, toolsCall('echo', { text: SECRET_ARGUMENT }, 41), { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` });
    assert.equal(response.status, 200);
    await response.text();

    const server = await serverSpan(41);
    assert.equal(server.traceId, CLIENT_TRACE, 'the client span is the root of the trace');
    assert.equal(server.parentSpanId, CLIENT_SPAN);
    assert.equal(server.name, 'tools/call echo');
    assert.equal(server.serviceName, 'gatehouse-under-test');
    assert.equal(server.attributes['mcp.method.name'], 'tools/call');
    assert.equal(server.attributes['gen_ai.tool.name'], 'echo');
    assert.equal(server.attributes['gen_ai.operation.name'], 'execute_tool');
    assert.equal(server.attributes['http.response.status_code'], 200);

    const spans = await traceOf(CLIENT_TRACE);
    const children = spans.filter((span) => span.parentSpanId === server.spanId);
    const steps = children.filter((span) => span.kind === SPAN_KIND.internal).map((span) => span.name);
    for (const step of ['authenticateCaller', 'readJsonRpcBody', 'enforcePerToolPolicy', 'forwardIdentity']) assert.ok(steps.includes(step), `${step} span in ${steps.join(', ')}`);
    const backendCall = children.find((span) => span.kind === SPAN_KIND.client);
    assert.ok(backendCall, 'a CLIENT span for the backend call');
    assert.equal(backendCall.name, 'tools/call echo');
    assert.equal(backendCall.attributes['server.address'], '127.0.0.1');

    assert.ok(backendTraceparents().includes(`00-${CLIENT_TRACE}-${backendCall.spanId}-01`), 'the backend continues the trace from the gateway span');
    const exported = JSON.stringify(spans);
    assert.doesNotMatch(exported, new RegExp(SECRET_ARGUMENT));
    assert.ok(!exported.includes(access), 'no token in any span');

    while (!gateway.auditLines.some((line) => line.includes(`"traceId":"${CLIENT_TRACE}"`))) await new Promise((resolve) => setTimeout(resolve, 10));
  });

  it('joins an MCP SDK client\'s own span, sent in params._meta, into one trace at the collector', async () => {
    // The client side as an instrumented MCP client does it: its own provider and span, exported to the same receiver.
    const clientProvider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'mcp-client' }),
      spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${receiver.url}/v1/traces` }) })],
    });
    const clientSpan = clientProvider.getTracer('test-client').startSpan('tools/call echo', { kind: SpanKind.CLIENT, attributes: { 'mcp.method.name': 'tools/call' } });
    const { traceId, spanId } = clientSpan.spanContext();
    const client = new Client({ name: 'traced-client', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${await token('/mcp')}` } } }));
    try {
      const result = await client.callTool({ name: 'echo', arguments: { text: 'traced' }, _meta: { traceparent: `00-${traceId}-${spanId}-01` } });
      assert.match(JSON.stringify(result), /traced/);
    } finally {
      await client.close();
      clientSpan.end();
      await clientProvider.shutdown();
    }
    const spans = await traceOf(traceId);
    const exportedClient = spans.find((span) => span.spanId === spanId);
    assert.equal(exportedClient?.serviceName, 'mcp-client');
    const server = spans.find((span) => span.kind === SPAN_KIND.server && span.parentSpanId === spanId);
    assert.ok(server, 'the gateway span is a child of the client span');
    assert.equal(server.serviceName, 'gatehouse-under-test');
    const backendCall = spans.find((span) => span.kind === SPAN_KIND.client && span.parentSpanId === server.spanId);
    assert.ok(backendCall);
    assert.ok(backendTraceparents().includes(`00-${traceId}-${backendCall.spanId}-01`), 'and the backend continues it');
  });

  it('traces a tool call on the legacy HTTP+SSE transport the same way', async () => {
    const access = await token('/legacy');
    const transport = new SSEClientTransport(new URL(`${gateway.url}/legacy/sse`), {
      requestInit: { headers: { authorization: `Bearer ${access}` } },
      eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${access}` } }) },
    });
    const client = new ClientV1({ name: 'traced-legacy-client', version: '1.0.0' });
    await client.connect(transport);
    const legacyTrace = 'dddddddddddddddddddddddddddddddd';
    try {
      await client.callTool({ name: 'echo', arguments: { text: 'legacy' }, _meta: { traceparent: `00-${legacyTrace}-${CLIENT_SPAN}-01` } });
    } finally {
      await client.close();
    }
    const spans = await traceOf(legacyTrace);
    const server = spans.find((span) => span.kind === SPAN_KIND.server && span.name === 'tools/call echo');
    assert.ok(server, spans.map((span) => span.name).join(', '));
    assert.equal(server.parentSpanId, CLIENT_SPAN);
    const backendCall = spans.find((span) => span.kind === SPAN_KIND.client && span.parentSpanId === server.spanId);
    assert.ok(backendCall);
    assert.ok(legacyBackend.seenHeaders.some((headers) => headers.traceparent === `00-${legacyTrace}-${backendCall.spanId}-01`));
  });

  it('takes the parent from params._meta (the MCP conventions), keeping the HTTP context as a link', async () => {
    const metaTrace = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    const call = toolsCall('echo', { text: 'hi' }, 42);
    const message = { ...call, params: { ...call.params, _meta: { traceparent: `00-${metaTrace}-bbbbbbbbbbbbbbbb-01` } } };
    const response = await mcpPost(`${gateway.url}/mcp`, await token('/mcp'), message, { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` });
    assert.equal(response.status, 200);
    await response.text();
    const server = await serverSpan(42);
    assert.equal(server.traceId, metaTrace);
    assert.equal(server.parentSpanId, 'bbbbbbbbbbbbbbbb');
    assert.deepEqual(server.links.map((link) => [link.traceId, link.spanId]), [[CLIENT_TRACE, CLIENT_SPAN]]);
  });

  it('ignores a malformed traceparent: a new trace, never an error', async () => {
    for (const [index, malformed] of ['00-xyz-00f067aa0ba902b7-01', `00-${'0'.repeat(32)}-${CLIENT_SPAN}-01`, 'not a traceparent at all', `ff-${CLIENT_TRACE}-${CLIENT_SPAN}-01`].entries()) {
      const requestId = 50 + index;
      const response = await mcpPost(`${gateway.url}/mcp`, await token('/mcp'), toolsCall('echo', { text: 'hi' }, requestId), { traceparent: malformed });
      assert.equal(response.status, 200, malformed);
      assert.match(await response.text(), /"text":"hi"/);
      const server = await serverSpan(requestId);
      assert.equal(server.parentSpanId, '', `${malformed}: a root span`);
      assert.match(server.traceId, /^[0-9a-f]{32}$/);
      assert.notEqual(server.traceId, CLIENT_TRACE);
    }
  });

  it('bounds what a client writes into spans: a huge tool name, session id or protocol version is cut short', async () => {
    const huge = 'x'.repeat(100_000);
    const response = await mcpPost(`${gateway.url}/mcp`, await token('/mcp'), toolsCall(huge, {}, 55));
    await response.text();
    const server = await serverSpan(55);
    assert.ok(server.name.length <= 300, `span name of ${server.name.length} characters`);
    assert.ok(String(server.attributes['gen_ai.tool.name']).length <= 256);
    assert.ok(String(server.attributes['gen_ai.tool.name']).startsWith('xxx'));

    // Before any token check: what an anonymous caller's headers put in the refused request's span.
    const anonymousTrace = 'dddddddddddddddddddddddddddddddd';
    const refused = await mcpPost(`${gateway.url}/mcp`, 'not-a-token', toolsCall('echo', {}, 56), {
      traceparent: `00-${anonymousTrace}-${CLIENT_SPAN}-01`,
      'mcp-session-id': 's'.repeat(8_000),
      'mcp-protocol-version': 'v'.repeat(8_000),
    });
    await refused.text();
    const [span] = (await traceOf(anonymousTrace)).filter((candidate) => candidate.kind === SPAN_KIND.server);
    assert.ok(span);
    assert.ok(String(span.attributes['mcp.session.id']).length <= 256);
    assert.ok(String(span.attributes['mcp.protocol.version']).length <= 256);
  });

  it('carries the trace to the broker’s token request (on-behalf-of) and names a refused call’s trace too', async () => {
    const obo = await mcpPost(`${gateway.url}/obo`, await token('/obo'), toolsCall('echo', { text: 'hi' }, 60), { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` });
    assert.equal(obo.status, 200);
    await obo.text();
    const server = await serverSpan(60);
    const spans = await traceOf(CLIENT_TRACE);
    const forwardIdentity = spans.find((span) => span.name === 'forwardIdentity' && span.parentSpanId === server.spanId);
    assert.ok(forwardIdentity);
    const tokenCall = spans.find((span) => span.kind === SPAN_KIND.client && span.parentSpanId === forwardIdentity.spanId);
    assert.ok(tokenCall, 'the token request is a CLIENT span under forwardIdentity');
    assert.equal(tokenCall.attributes['url.full'], `http://127.0.0.1:${(tokenEndpoint.address() as AddressInfo).port}/token`, 'no query in the span');
    assert.ok(tokenRequests.some((headers) => headers.traceparent === `00-${CLIENT_TRACE}-${tokenCall.spanId}-01`));

    const refused = await mcpPost(`${gateway.url}/mcp`, 'not-a-token', toolsCall('echo', {}, 61), { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` });
    assert.equal(refused.status, 401);
    await refused.text();
    await tracing.flush();
    const refusedSpan = receiver.spans.find((span) => span.kind === SPAN_KIND.server && span.traceId === CLIENT_TRACE && span.attributes['http.response.status_code'] === 401);
    assert.ok(refusedSpan, 'a refused request is traced too');
    assert.equal(refusedSpan.name, 'POST /mcp');
    assert.equal(refusedSpan.attributes['error.type'], '401');
    assert.ok(receiver.spans.some((span) => span.name === 'authenticateCaller' && span.parentSpanId === refusedSpan.spanId && span.status.code === 2));
  });
});

describe('tracing configuration (OTEL_* environment)', () => {
  it('is switched on by the OTEL_* environment of `gatehouse start`, and shut down (flushed) with it', async () => {
    const demo = await startDemo({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: 'gatehouse-started' } });
    const startedTrace = 'cccccccccccccccccccccccccccccccc';
    try {
      const response = await fetch(demo.mcpUrl, { method: 'POST', headers: { traceparent: `00-${startedTrace}-${CLIENT_SPAN}-01`, 'content-type': 'application/json' }, body: '{}' });
      assert.equal(response.status, 401);
    } finally {
      await demo.close();
    }
    const span = receiver.spans.find((candidate) => candidate.traceId === startedTrace && candidate.kind === SPAN_KIND.server);
    assert.ok(span, 'exported by the shutdown at the latest');
    assert.equal(span.serviceName, 'gatehouse-started');
    assert.equal(span.parentSpanId, CLIENT_SPAN);
  });


  it('is off, with nothing of OpenTelemetry loaded, unless an OTLP endpoint is configured', async () => {
    const { logger } = captureLogs();
    for (const env of [{}, { OTEL_SERVICE_NAME: 'x' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' }]) {
      assert.equal(await loadTracing(env, logger), tracingOff, JSON.stringify(env));
    }
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }), 'http://collector:4318/v1/traces');
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' }), 'http://b:4318/custom');
  });

  it('exports OTLP protobuf by default (the OTLP default protocol), JSON when asked', async () => {
    const { logger } = captureLogs();
    const protobuf = await loadTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces` }, logger);
    protobuf.startRequest({}, Date.now(), { name: 'GET /mcp', attributes: {} }).end({ status: 200 });
    await protobuf.shutdown();
    assert.ok(receiver.contentTypes.includes('application/x-protobuf'), receiver.contentTypes.join(', '));
    assert.ok(receiver.contentTypes.includes('application/json'));
  });

  it('names, as steps run before the MCP message is known, only steps that exist and come before the body is read', () => {
    const lists = [streamableHttpSteps, legacySseMessageSteps, legacySseStreamSteps, httpRouteSteps].map((steps) => steps.map((step) => step.name));
    for (const name of BEFORE_MESSAGE) assert.ok(lists.some((names) => names.includes(name)), `${name} is a step`);
    for (const names of lists) {
      // In each list the steps before the message form a prefix: a span of a later step always has its server span.
      const firstAfter = names.findIndex((name) => !BEFORE_MESSAGE.has(name));
      assert.ok(names.slice(firstAfter).every((name) => !BEFORE_MESSAGE.has(name)), names.join(', '));
    }
  });

  it('is loaded by one file only, and only through a dynamic import: off, no OpenTelemetry code runs', () => {
    const importers = readdirSync('src', { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && readFileSync(join('src', file), 'utf8').includes("from '@opentelemetry/"))
      .map((file) => file.replaceAll('\\', '/'));
    assert.deepEqual(importers, ['observability/otel-tracing.ts']);
    assert.match(readFileSync('src/app/load-tracing.ts', 'utf8'), /await import\('\.\.\/observability\/otel-tracing\.ts'\)/);
  });

  it('logs the collector endpoint without a password or query values (a vendor key rides in either)', async () => {
    const { logger, logs } = captureLogs();
    const keyed = await loadTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://tenant:collector-password@127.0.0.1:1/v1/traces?api_key=collector-key' }, logger);
    await keyed.shutdown();
    assert.match(logs.text(), /OpenTelemetry tracing on/);
    assert.ok(!logs.text().includes('collector-password'), logs.text());
    assert.ok(!logs.text().includes('collector-key'), logs.text());
  });

  it('a collector that fails with a huge answer costs one short log line at shutdown, never its body', async () => {
    const broken = createServer((request, response) => request.resume().on('end', () => response.writeHead(500).end(`collector-body-${'x'.repeat(1_000_000)}`)));
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    try {
      const { logger, logs } = captureLogs();
      const failing = await loadTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${(broken.address() as AddressInfo).port}/v1/traces`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, logger);
      failing.startRequest({}, Date.now(), { name: 'POST /mcp', attributes: {} }).end({ status: 200 });
      await failing.shutdown();
      assert.match(logs.text(), /spans could not be exported at shutdown/);
      assert.ok(!logs.text().includes('collector-body-'), `${logs.text().length} characters logged`);
    } finally {
      await new Promise((resolve) => broken.close(resolve));
    }
  });

  it('refuses at start a protocol or sampler it does not support, naming the variable', async () => {
    const { logger } = captureLogs();
    await assert.rejects(loadTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, logger), /OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported/);
    await assert.rejects(loadTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_TRACES_SAMPLER: 'sometimes' }, logger), /OTEL_TRACES_SAMPLER=sometimes is not supported: use always_on/);
  });
});
