import { z } from 'zod';
import {
  acceptedContent,
  CLIENT_CAPABILITIES_META_KEY,
  inputRequired,
  inputResponse,
  type InputRequests,
  type McpServer,
  type RequestStateCodec,
  type ServerContext,
} from '@modelcontextprotocol/server';

/**
 * The 2026-07-28 fixtures: multi-round-trip tools and prompt (SEP-2322 `InputRequiredResult`), the capability probe
 * (SEP-2575 `-32021`) and the list-changed triggers the `subscriptions/listen` checks call. `requestState` is sealed
 * with the SDK's HMAC codec, so the tampered-state scenario gets the `-32602` the spec requires.
 */

export interface ListChangeTriggers {
  toolsChanged(): void;
  promptsChanged(): void;
}

const text = (value: string) => ({ content: [{ type: 'text' as const, text: value }] });
const nameForm = z.object({ name: z.string() });

function clientCapabilities(ctx: ServerContext): Record<string, unknown> {
  // The SDK types the lifted envelope as `{}`; its keys are the reserved `_meta` names.
  const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
  return (envelope?.[CLIENT_CAPABILITIES_META_KEY] ?? {}) as Record<string, unknown>;
}

export function registerInputRequiredFixtures(server: McpServer, codec: RequestStateCodec<string>, triggers: ListChangeTriggers): void {
  server.registerTool('test_input_required_result_elicitation', { description: 'Asks for a name (SEP-2322)' }, async (ctx) => {
    const answer = acceptedContent(ctx.mcpReq.inputResponses, 'user_name', nameForm);
    if (answer) return text(`Hello, ${answer.name}!`);
    // Missing, declined, malformed or wrongly keyed answers all ask again, as the scenario expects (not an error).
    return inputRequired({ inputRequests: { user_name: inputRequired.elicit({ message: 'What is your name?', requestedSchema: nameForm }) } });
  });

  server.registerTool('test_input_required_result_sampling', { description: 'Asks for a completion (SEP-2322)' }, async (ctx) => {
    const answer = inputResponse(ctx.mcpReq.inputResponses, 'capital_question');
    if (answer.kind === 'sampling') {
      const content = answer.result.content as { type?: string; text?: string };
      return text(`Sampling answer: ${content.text ?? JSON.stringify(content)}`);
    }
    return inputRequired({
      inputRequests: {
        capital_question: inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'What is the capital of France?' } }], maxTokens: 100 }),
      },
    });
  });

  server.registerTool('test_input_required_result_list_roots', { description: 'Asks for the roots (SEP-2322)' }, async (ctx) => {
    const answer = inputResponse(ctx.mcpReq.inputResponses, 'client_roots');
    if (answer.kind === 'roots') return text(`Roots: ${answer.roots.map((root) => root.uri).join(', ')}`);
    return inputRequired({ inputRequests: { client_roots: inputRequired.listRoots() } });
  });

  server.registerTool('test_input_required_result_request_state', { description: 'Round-trips requestState (SEP-2322)' }, async (ctx) => {
    const confirmed = acceptedContent(ctx.mcpReq.inputResponses, 'confirm', z.object({ ok: z.boolean() }));
    if (confirmed && ctx.mcpReq.requestState<string>() === 'confirm') return text(`state-ok: confirmed=${confirmed.ok}`);
    return inputRequired({
      inputRequests: { confirm: inputRequired.elicit({ message: 'Please confirm', requestedSchema: z.object({ ok: z.boolean() }) }) },
      requestState: await codec.mint('confirm'),
    });
  });

  server.registerTool('test_input_required_result_multiple_inputs', { description: 'Three inputs in one round (SEP-2322)' }, async (ctx) => {
    const responses = ctx.mcpReq.inputResponses;
    const complete = ['user_name', 'greeting', 'client_roots'].every((key) => inputResponse(responses, key).kind !== 'missing');
    if (complete && ctx.mcpReq.requestState<string>() === 'multiple') return text('All inputs received.');
    return inputRequired({
      inputRequests: {
        user_name: inputRequired.elicit({ message: 'What is your name?', requestedSchema: nameForm }),
        greeting: inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'Generate a greeting' } }], maxTokens: 50 }),
        client_roots: inputRequired.listRoots(),
      },
      requestState: await codec.mint('multiple'),
    });
  });

  server.registerTool('test_input_required_result_multi_round', { description: 'Two rounds of questions (SEP-2322)' }, async (ctx) => {
    const state = ctx.mcpReq.requestState<string>();
    const responses = ctx.mcpReq.inputResponses;
    if (state === 'round-2' && acceptedContent(responses, 'step2', z.object({ color: z.string() }))) return text('Multi-round input complete.');
    if (state === 'round-1' && acceptedContent(responses, 'step1', nameForm)) {
      return inputRequired({
        inputRequests: { step2: inputRequired.elicit({ message: 'Step 2: What is your favorite color?', requestedSchema: z.object({ color: z.string() }) }) },
        requestState: await codec.mint('round-2'),
      });
    }
    return inputRequired({
      inputRequests: { step1: inputRequired.elicit({ message: 'Step 1: What is your name?', requestedSchema: nameForm }) },
      requestState: await codec.mint('round-1'),
    });
  });

  server.registerTool('test_input_required_result_tampered_state', { description: 'Rejects a tampered requestState (SEP-2322)' }, async (ctx) => {
    // A tampered state never reaches here: the codec's verify refuses it with -32602 before the handler runs.
    if (ctx.mcpReq.requestState<string>() === 'sealed') return text('state verified');
    return inputRequired({
      inputRequests: { confirm: inputRequired.elicit({ message: 'Please confirm', requestedSchema: z.object({ ok: z.boolean() }) }) },
      requestState: await codec.mint('sealed'),
    });
  });

  server.registerTool('test_input_required_result_capabilities', { description: 'Asks only for what the client supports (SEP-2322)' }, async (ctx) => {
    if (ctx.mcpReq.inputResponses) return text('Inputs received.');
    const declared = clientCapabilities(ctx);
    const inputRequests: InputRequests = {};
    if (declared.elicitation) inputRequests.user_name = inputRequired.elicit({ message: 'What is your name?', requestedSchema: nameForm });
    if (declared.sampling) {
      inputRequests.greeting = inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'Generate a greeting' } }], maxTokens: 50 });
    }
    if (declared.roots) inputRequests.client_roots = inputRequired.listRoots();
    if (Object.keys(inputRequests).length === 0) return text('The client declared no input capability; nothing to ask.');
    return inputRequired({ inputRequests });
  });

  server.registerPrompt('test_input_required_result_prompt', { description: 'A prompt that needs context first (SEP-2322)' }, async (ctx) => {
    const answer = acceptedContent(ctx.mcpReq.inputResponses, 'user_context', z.object({ context: z.string() }));
    if (answer) return { messages: [{ role: 'user', content: { type: 'text', text: `Use this context: ${answer.context}` } }] };
    return inputRequired({
      inputRequests: { user_context: inputRequired.elicit({ message: 'What context should the prompt use?', requestedSchema: z.object({ context: z.string() }) }) },
    });
  });

  // SEP-2575 probes. Asking for an input the client did not declare is refused by the SDK with -32021.
  server.registerTool('test_missing_capability', { description: 'Needs sampling, which the client must declare' }, async () =>
    inputRequired({ inputRequests: { greeting: inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'Say hello' } }], maxTokens: 10 }) } }),
  );
  server.registerTool('test_streaming_elicitation', { description: 'Answers with an input request, never a pushed request' }, async (ctx) =>
    acceptedContent(ctx.mcpReq.inputResponses, 'user_name', nameForm)
      ? text('Thanks.')
      : inputRequired({ inputRequests: { user_name: inputRequired.elicit({ message: 'What is your name?', requestedSchema: nameForm }) } }),
  );
  server.registerTool('test_logging_tool', { description: 'Logs, which the SDK drops unless the request set a log level' }, async (ctx) => {
    await ctx.mcpReq.log('info', 'test_logging_tool ran');
    return text('logged');
  });
  server.registerTool('test_trigger_tool_change', { description: 'Announces a tool list change' }, async () => {
    triggers.toolsChanged();
    return text('tools/list_changed published');
  });
  server.registerTool('test_trigger_prompt_change', { description: 'Announces a prompt list change' }, async () => {
    triggers.promptsChanged();
    return text('prompts/list_changed published');
  });
}
