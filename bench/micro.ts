import { routeSchema } from '../src/config/schema.ts';
import { parseMcpPost } from '../src/proxy/mcp-message.ts';
import { compileArgumentPolicies, decideArguments } from '../src/proxy/argument-policy.ts';
import { decideTool } from '../src/proxy/tool-policy.ts';
import { randomBytes } from 'node:crypto';
import { sealValue, unsealValue } from '../src/keys/sealing.ts';

/**
 * MICRO-BENCHMARKS: single functions of the request path, each run `iterations` times in this process after a
 * warm-up, reported in µs per operation. To add one (a policy check, tracing switched off, …), append an entry to
 * MICRO_BENCHMARKS; the bench runs and reports every entry, in a section of its own.
 */
export interface MicroBenchmark {
  name: string;
  iterations: number;
  run(): unknown;
}

const toolsCall = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } }));
const route = routeSchema.parse({
  path: '/mcp',
  backend: 'http://127.0.0.1:9/mcp',
  tools: { echo: { scopes: ['mcp:tools'], groups: ['engineering', 'support'] } },
});
const caller = { scopes: ['mcp:tools'], groups: ['support'] };
const celRoute = routeSchema.parse({
  path: '/mail',
  backend: 'http://127.0.0.1:9/mcp',
  tools: { send_mail: { allow: 'args.mailbox == user.email && "support" in user.groups' } },
});
const celPolicies = compileArgumentPolicies(celRoute);
const celCall = {
  tool: 'send_mail',
  args: { mailbox: 'ada@example.com', subject: 'hi', body: 'hello' },
  annotations: {},
  caller: { ...caller, subject: 'tenant/ada', email: 'ada@example.com', clientId: 'client-1' },
};

// The route default of docs/authorization.md: read-only tools for everyone, the rest for one group.
const annotationsRoute = routeSchema.parse({
  path: '/mail',
  backend: 'http://127.0.0.1:9/mcp',
  defaultToolPolicy: { allow: '(has(tool.annotations.readOnlyHint) && tool.annotations.readOnlyHint == true) || "mail-admins" in user.groups' },
});
const annotationsPolicies = compileArgumentPolicies(annotationsRoute);
const annotationsCall = { ...celCall, tool: 'delete_message', annotations: { destructiveHint: true } };

export const MICRO_BENCHMARKS: MicroBenchmark[] = [
  { name: 'JSON-RPC POST body parsed and validated (parseMcpPost, tools/call)', iterations: 100_000, run: () => parseMcpPost(toolsCall) },
  { name: 'per-tool policy check (decideTool, listed tool with scopes and groups)', iterations: 1_000_000, run: () => decideTool(route, 'echo', caller) },
  { name: 'argument policy (decideArguments, compiled CEL over user and args)', iterations: 100_000, run: () => decideArguments(celPolicies, celCall) },
  { name: 'sealing a token at rest (sealValue, AES-256-GCM, key imported once per key set)', iterations: 100_000, run: () => sealValue(sealingKey, token, 'grant-1') },
  { name: 'opening a sealed token (unsealValue, e.g. a cached downstream token per tool call)', iterations: 100_000, run: () => unsealValue(() => sealingKey, sealedToken, 'grant-1') },
  { name: 'route default policy (decideArguments, compiled CEL over tool annotations and groups, denied)', iterations: 100_000, run: () => decideArguments(annotationsPolicies, annotationsCall) },
];

const sealingKey = { kid: 'bench', key: randomBytes(32) };
const token = randomBytes(32).toString('base64url');
const sealedToken = sealValue(sealingKey, token, 'grant-1');

export function runMicroBenchmarks(benchmarks: MicroBenchmark[], scale = 1): Array<{ name: string; microsPerOp: number; iterations: number }> {
  return benchmarks.map((benchmark) => {
    const iterations = Math.max(1, Math.floor(benchmark.iterations * scale));
    for (let i = 0; i < Math.min(iterations, 10_000); i++) benchmark.run();
    const started = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) benchmark.run();
    const elapsedMicros = Number(process.hrtime.bigint() - started) / 1000;
    return { name: benchmark.name, microsPerOp: elapsedMicros / iterations, iterations };
  });
}
