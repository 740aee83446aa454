import { Environment } from '@marcbachmann/cel-js';

/**
 * Tool policies written in CEL (the policy language of Kubernetes admission, Envoy and agentgateway): an expression
 * over who calls (`user`, `client`), what (`tool`) and with what (`args`) that must be `true` for the call to go
 * through. Expressions are parsed and type-checked against these declarations when the config loads, so a typo
 * (`user.emial`) or a non-boolean expression is a config error naming the field, never a surprise on a request;
 * each is compiled once and the request path only evaluates it.
 *
 * @see https://github.com/google/cel-spec
 */
export interface ToolPolicyInput {
  user: { sub: string; email: string; groups: readonly string[]; tenant: string };
  /** `appOnly`: no signed-in user (client credentials, a workload token); `user` fields are then empty. */
  client: { id: string; appOnly: boolean };
  tool: { name: string; annotations: Record<string, unknown> };
  args: Record<string, unknown>;
}

export interface CompiledToolExpression {
  source: string;
  /** True only for the boolean `true`; throws on an evaluation error (a missing key, a type mismatch at run time). */
  allows(input: ToolPolicyInput): boolean;
}

/** Parse-time bounds: an expression is configuration, but one pasted from elsewhere should not cost the gateway. */
const LIMITS = { maxAstNodes: 2_000, maxDepth: 64, maxListElements: 1_000, maxMapEntries: 1_000, maxCallArguments: 32 };

function policyEnvironment(): Environment {
  return new Environment({ limits: LIMITS })
    .registerVariable({ name: 'user', schema: { sub: 'string', email: 'string', groups: 'list<string>', tenant: 'string' } })
    .registerVariable({ name: 'client', schema: { id: 'string', appOnly: 'bool' } })
    .registerVariable({ name: 'tool', schema: { name: 'string', annotations: 'map<string, dyn>' } })
    .registerVariable('args', 'map<string, dyn>');
}

/** Why `source` is not a usable tool policy (syntax, unknown field, not boolean); undefined when it is. */
export function toolExpressionProblem(source: string): string | undefined {
  let result: ReturnType<Environment['check']>;
  try {
    result = policyEnvironment().check(source);
  } catch (error) {
    return firstLine(error);
  }
  if (!result.valid) return firstLine(result.error);
  if (String(result.type) !== 'bool') return `must be a boolean expression (this one is ${String(result.type)})`;
  return undefined;
}

export function compileToolExpression(source: string): CompiledToolExpression {
  const problem = toolExpressionProblem(source);
  if (problem !== undefined) throw new TypeError(`invalid tool policy expression: ${problem}`);
  const evaluate = policyEnvironment().parse(source);
  return { source, allows: (input) => evaluate(input as unknown as Record<string, unknown>) === true };
}

/** The syntax tree cel-js makes of a valid expression (its `ast`), for what the expression reads (argument-reads.ts). */
export function parseToolExpression(source: string): unknown {
  return (policyEnvironment().parse(source) as unknown as { ast: unknown }).ast;
}

/** cel-js messages carry a source excerpt with a caret on later lines; a config error is one line. */
const firstLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n')[0]!.trim();
