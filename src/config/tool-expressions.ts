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

/**
 * The types a call's arguments bring (JSON's boolean, string, number — which CEL reads as `double` —, array and
 * object), with the literal types an expression may compare them with.
 */
const COMPARED_TYPES = ['bool', 'string', 'double', 'int', 'uint', 'list', 'map'] as const;
const NUMERIC: ReadonlySet<string> = new Set(['double', 'int', 'uint']);

/**
 * The environment expressions are evaluated in: the checked one, where comparing two values of different
 * types (`"true" == true`, `1 != "1"`) is an evaluation error — refused, as every error is — instead of CEL's `false`.
 * An argument is `dyn`, so nothing can be checked before the call: `args.recursive != true` held for the string
 * `"true"`, the number 1 or `"yes"`, which a lenient backend (FastMCP validates with Pydantic's lax mode) then ran as
 * the `true` the policy refused. Numbers of any kind still compare with each other, `null` with anything (asking
 * whether a value is there), and `||`/`&&` absorb the error where the other side decides (`type(args.x) == string &&
 * args.x == "a" || args.x == 1`). Checking uses the plain environment, so `user.email == 1` stays a config error.
 */
function evaluationEnvironment(): Environment {
  let environment = policyEnvironment();
  for (const [index, left] of COMPARED_TYPES.entries()) {
    for (const right of COMPARED_TYPES.slice(index + 1)) {
      if (NUMERIC.has(left) && NUMERIC.has(right)) continue;
      // One registration covers `==` and `!=`, both ways round. One error per pair, made once: thrown per element of
      // a long mistyped list, a new one (and its message) each time cost a client-chosen amount of CPU.
      const mismatch = new TypeError(`compares ${named(left)} with ${named(right)}`);
      environment = environment.registerOperator(`${left} == ${right}`, () => {
        throw mismatch;
      });
    }
  }
  return environment;
}

const named = (type: string): string => `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;

export function compileToolExpression(source: string): CompiledToolExpression {
  const problem = toolExpressionProblem(source);
  if (problem !== undefined) throw new TypeError(`invalid tool policy expression: ${problem}`);
  const evaluate = evaluationEnvironment().parse(source);
  return {
    source,
    allows: (input) => {
      // Errors are answers here (a refusal), thrown per comparison of a long list when the types differ: without a
      // stack each costs a fraction, and a client cannot buy milliseconds of CPU with a list of mistyped values.
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      try {
        return evaluate(input as unknown as Record<string, unknown>) === true;
      } finally {
        Error.stackTraceLimit = limit;
      }
    },
  };
}

/** The syntax tree cel-js makes of a valid expression (its `ast`), for what the expression reads (argument-reads.ts). */
export function parseToolExpression(source: string): unknown {
  return (policyEnvironment().parse(source) as unknown as { ast: unknown }).ast;
}

/** cel-js messages carry a source excerpt with a caret on later lines; a config error is one line. */
const firstLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n')[0]!.trim();
