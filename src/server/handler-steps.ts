/**
 * Security-relevant handlers are exported lists of named steps run in order over one context object, the way
 * node-oidc-provider composes its endpoints (`checkPKCE`, `checkRedirectUri`, …): a reader sees the order of the
 * checks in the list, each step is a function with its own test, and each README table of steps is checked against
 * its list (test/architecture/handler-steps.test.ts).
 *
 * A step fills in a field of the context for later steps, throws a ProtocolError (the route's error renderer answers
 * it), or answers the request itself and sets `answered`, which ends the list there.
 */
export type HandlerStep<Context> = (context: Context) => void | Promise<void>;

export interface StepContext {
  /** Set by a step that has answered the request (a redirect, a hand-over): the steps after it do not run. */
  answered?: boolean;
}

/** Runs each step through `around` when given (tracing wraps every step in a span), else directly. */
export type AroundStep<Context> = (step: HandlerStep<Context>, context: Context) => Promise<void>;

export async function runSteps<Context extends StepContext>(steps: readonly HandlerStep<Context>[], context: Context, around?: AroundStep<Context>): Promise<void> {
  for (const step of steps) {
    // A step that finished synchronously is not awaited: an `await` of nothing still costs a microtask turn.
    const pending = around === undefined ? step(context) : around(step, context);
    if (pending !== undefined) await pending;
    if (context.answered === true) return;
  }
}
