import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { accountRecord, type AccountRecord } from '../../src/records/account.ts';
import { configSchema } from '../../src/config/schema.ts';
import { compileArgumentPolicies, decideArguments } from '../../src/proxy/argument-policy.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { createTestKeyring, listedTools, mcpPost, mintAccessToken, rpcBody, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * Argument-level tool policies (CEL) through the real gateway: a denial is a JSON-RPC error with its reason, audited;
 * an expression failing at run time and oversized arguments deny, never a 500.
 */
const keyring = createTestKeyring();
let backend: McpBackend;
let gateway: TestGateway;

before(async () => {
  backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        {
          path: '/mcp',
          backend: backend.url,
          deniedToolResponse: 'jsonrpc_error',
          defaultToolPolicy: { allow: '"support" in user.groups && client.id == "client-1"', denyReason: 'support staff only' },
          tools: { echo: { allow: 'args.text == user.email', denyReason: 'echo only your own address' } },
        },
        { path: '/forbidden', backend: backend.url, tools: { echo: { allow: 'false' } } },
        // A default that refuses by caller alone (ada is no admin): every tool it decides is refused, so none is listed
        // but echo, which its own expression decides.
        { path: '/admins', backend: backend.url, defaultToolPolicy: { allow: '"admins" in user.groups' }, tools: { echo: { allow: 'true' } } },
        // One that reads the tool's name decides tool by tool: nothing can be hidden before the call.
        { path: '/by-name', backend: backend.url, defaultToolPolicy: { allow: 'tool.name == "echo" || "admins" in user.groups' } },
      ],
    },
  });
  const account: AccountRecord = { subject: 'tenant/ada', issuer: 'https://idp', email: 'ada@example.com', groups: ['support'], firstSeenAt: 1, lastSeenAt: 1 };
  await gateway.store.set(accountRecord.namespace, account.subject, account);
});
after(async () => {
  await gateway?.close();
  await backend?.close();
});

const token = (path = '/mcp', clientId = 'client-1') => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path, sub: 'tenant/ada', clientId });

async function call(args: unknown, options: { path?: string; clientId?: string; tool?: string } = {}) {
  const path = options.path ?? '/mcp';
  const message = { ...toolsCall(options.tool ?? 'echo', {}, 4), params: { name: options.tool ?? 'echo', arguments: args } };
  const response = await mcpPost(gateway.url + path, await token(path, options.clientId), message);
  // A served call is relayed as the backend answered it (JSON or one SSE event).
  return { status: response.status, body: await rpcBody(response) };
}


/** Decides a `read_file` call's arguments under `allow`, for an ordinary user. */
function readFileDecider(allow: string): (args: unknown) => ReturnType<typeof decideArguments> {
  const [route] = configSchema.parse({ routes: [{ path: '/files', backend: 'http://127.0.0.1:1/mcp', tools: { read_file: { allow } } }] }).routes;
  const policies = compileArgumentPolicies(route!);
  const caller = { subject: 'tenant/ada', clientId: 'client-1', groups: [], scopes: ['mcp:tools'] } as unknown as Parameters<typeof decideArguments>[1]['caller'];
  return (args) => decideArguments(policies, { tool: 'read_file', args, annotations: {}, caller });
}
describe('argument-level tool policy (CEL)', () => {
  it('allows a call the expression accepts', async () => {
    const { status, body } = await call({ text: 'ada@example.com' });
    assert.equal(status, 200);
    assert.ok(body.result, JSON.stringify(body));
  });

  it('denies with the reason as a JSON-RPC error, and audits it', async () => {
    const { status, body } = await call({ text: 'grace@example.com' });
    assert.equal(status, 200);
    assert.equal(body.id, 4);
    assert.equal(body.error?.message, 'You are not allowed to call echo: echo only your own address.');
    // The audit log writes in batches: wait for the record (the test times out if it never comes).
    const audited = () =>
      gateway.auditLines.some((line) => {
        const record = JSON.parse(line) as { tool?: string; outcome: string; reason?: string };
        return record.tool === 'echo' && record.outcome === 'denied' && record.reason === 'policy: echo only your own address';
      });
    while (!audited()) await new Promise((resolve) => setImmediate(resolve));
  });

  it("applies the route's default to tools without their own expression", async () => {
    assert.ok((await call({}, { tool: 'whoami' })).body.result, 'whoami allowed for support on client-1');
    const other = await call({}, { tool: 'whoami', clientId: 'client-2' });
    assert.match(other.body.error?.message ?? '', /support staff only/);
  });

  it('denies, never a 500, when the expression fails at run time or the arguments are not an object', async () => {
    for (const args of [{}, { text: 42 }, ['ada@example.com'], 'ada@example.com']) {
      const { status, body } = await call(args);
      assert.ok(status < 500, `${JSON.stringify(args)} → ${status}`);
      assert.ok(body.error, `${JSON.stringify(args)} must be refused`);
    }
  });

  it('refuses arguments too deep or too large before evaluating', async () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 2_000; i++) deep = { d: deep };
    const wide = { text: 'ada@example.com', list: Array.from({ length: 20_000 }, (_, i) => i) };
    for (const args of [{ text: 'ada@example.com', deep }, wide]) {
      const { status, body } = await call(args);
      assert.ok(status < 500, String(status));
      assert.match(body.error?.message ?? '', /too large or too deeply nested/);
    }
  });

  it('answers 403 access_denied with the reason when the route uses step-up challenges', async () => {
    const response = await mcpPost(gateway.url + '/forbidden', await token('/forbidden'), toolsCall('echo', { text: 'a' }));
    assert.equal(response.status, 403);
    assert.match(((await response.json()) as { error: { message: string } }).error.message, /not allowed to call echo: the policy of this tool does not allow this call/);
  });
});

describe('argument policies after a configuration reload', () => {
  it('enforce the reloaded CEL rule, not the one compiled at start', async () => {
    const { createRouteState } = await import('../../src/proxy/route-state.ts');
    const { configSchema } = await import('../../src/config/schema.ts');
    const config = configSchema.parse({
      routes: [{ path: '/mcp', backend: 'http://127.0.0.1:9/mcp', tools: { echo: { allow: 'args.text == "yes"' } } }],
    });
    const route = config.routes[0]!;
    const state = createRouteState('http://127.0.0.1:1', route);
    const caller = { scopes: [], groups: [], subject: 'tenant/alice', clientId: 'client-1' };
    const { decideArguments } = await import('../../src/proxy/argument-policy.ts');
    const call = { tool: 'echo', args: { text: 'no' }, annotations: {}, caller };
    assert.equal(decideArguments(state.argumentPolicies, call).allowed, false);
    // What src/app/reload-config.ts does: a new `tools` object on the running route.
    route.tools = configSchema.parse({ routes: [{ path: '/mcp', backend: 'http://127.0.0.1:9/mcp', tools: { echo: { allow: 'args.text == "no"' } } }] }).routes[0]!.tools;
    assert.equal(decideArguments(state.argumentPolicies, call).allowed, true);
    await state.backend.close();
  });
});

describe('argument policies and app-only callers', () => {
  it('`client.appOnly` tells app-only callers apart, and their client id never passes for `user.sub`', async () => {
    const { compileArgumentPolicies, decideArguments } = await import('../../src/proxy/argument-policy.ts');
    const { configSchema } = await import('../../src/config/schema.ts');
    const route = configSchema.parse({
      routes: [{
        path: '/mcp',
        backend: 'http://127.0.0.1:9/mcp',
        tools: { echo: { allow: '!client.appOnly' }, whoami: { allow: 'user.sub == "nightly-agent" || (client.appOnly && client.id == "nightly-agent")' } },
      }],
    }).routes[0]!;
    const policies = compileArgumentPolicies(route);
    const app = { scopes: [], groups: [], subject: 'nightly-agent', clientId: 'nightly-agent', appOnly: true };
    const user = { ...app, subject: 'tenant/ada', clientId: 'some-client', appOnly: false };
    const decide = (tool: string, caller: typeof app) => decideArguments(policies, { tool, args: {}, annotations: {}, caller }).allowed;
    assert.equal(decide('echo', app), false);
    assert.equal(decide('echo', user), true);
    assert.equal(decide('whoami', app), true);
    assert.equal(decide('whoami', { ...app, clientId: 'other', subject: 'other' }), false);
  });

  it('does not list a tool whose expression refuses this caller whatever the arguments (`false`), and lists one that reads them', async () => {
    const forbidden = (await listedTools(`${gateway.url}/forbidden`, await token('/forbidden'))).map((tool) => tool.name);
    assert.ok(forbidden.length > 0, 'the backend lists tools');
    assert.ok(!forbidden.includes('echo'), forbidden.join(', '));
    const readsArguments = (await listedTools(`${gateway.url}/mcp`, await token('/mcp'))).map((tool) => tool.name);
    assert.ok(readsArguments.includes('echo'), 'its call may be allowed: it depends on the arguments');
  });

  it("does not list the tools a route's default refuses this caller whatever the tool and arguments; lists them where it reads the name", async () => {
    const admins = (await listedTools(`${gateway.url}/admins`, await token('/admins'))).map((tool) => tool.name);
    assert.deepEqual(admins, ['echo']);
    const refused = await call({}, { path: '/admins', tool: 'whoami' });
    assert.ok(refused.body.error !== undefined, `and calling one is refused: ${JSON.stringify(refused.body)}`);
    const byName = (await listedTools(`${gateway.url}/by-name`, await token('/by-name'))).map((tool) => tool.name);
    assert.ok(byName.length > 1 && byName.includes('echo'), byName.join(', '));
  });

  it('denies an argument the policy reads spelt in another case (absent to the policy, that argument to a Go backend)', () => {
    const decide = readFileDecider('!has(args.path) || args.path.startsWith("/public/")');
    assert.equal(decide({ path: '/public/a' }).allowed, true);
    assert.equal(decide({}).allowed, true);
    assert.equal(decide({ path: '/etc/shadow' }).allowed, false);
    const misspelt = decide({ Path: '/etc/shadow' });
    assert.equal(misspelt.allowed, false);
    assert.match(misspelt.reason ?? '', /spelt in another case/);
    assert.equal(decide({ PATH: '/etc/shadow' }).allowed, false);
    // Both spellings: the policy reads `path`, a Go backend binding a struct the last of the two.
    assert.equal(decide({ path: '/public/a', PATH: '/etc/shadow' }).allowed, false);
    // Names the policy does not read keep any case.
    assert.equal(decide({ path: '/public/a', Encoding: 'utf8' }).allowed, true);
  });

  it('denies arguments holding a lone surrogate: a deny-list passed "/etc/shadow\\ud800", which a server dropping it reads as /etc/shadow', () => {
    const decide = readFileDecider('!has(args.path) || args.path != "/etc/shadow"');
    assert.equal(decide({ path: '/etc/shadow' }).allowed, false);
    for (const args of [{ path: '/etc/shadow\ud800' }, { path: '/tmp/a', more: ['\udc00'] }, { path: '/tmp/a', ['k\ud800']: 1 }]) {
      const decision = decide(args);
      assert.equal(decision.allowed, false, JSON.stringify(args));
      assert.match(decision.reason ?? '', /lone UTF-16 surrogate/);
    }
    // A surrogate pair is one whole character.
    assert.equal(decide({ path: '/tmp/\ud83d\ude00' }).allowed, true);
  });

  describe('names read at any depth, or through another name', () => {
    const caller = { subject: 'tenant/ada', clientId: 'client-1', email: 'ada@example.com', groups: ['staff'], scopes: ['mcp:tools'] } as unknown as Parameters<typeof decideArguments>[1]['caller'];
    const decider = (tools: Record<string, unknown>, defaultToolPolicy?: unknown) => {
      const [route] = configSchema.parse({ routes: [{ path: '/files', backend: 'http://127.0.0.1:1/mcp', tools, ...(defaultToolPolicy ? { defaultToolPolicy } : {}) }] }).routes;
      const policies = compileArgumentPolicies(route!);
      return (tool: string, args: unknown) => decideArguments(policies, { tool, args, annotations: {}, caller });
    };

    it('denies a nested field the policy reads spelt in another case (`Recursive` where it reads args.opts.recursive)', () => {
      const decide = decider({ remove: { allow: '!has(args.opts.recursive) || args.opts.recursive == false' } });
      assert.equal(decide('remove', { opts: { recursive: false } }).allowed, true);
      assert.equal(decide('remove', { opts: { recursive: true } }).allowed, false);
      assert.equal(decide('remove', { opts: { Recursive: true } }).allowed, false);
      assert.equal(decide('remove', { opts: { recursive: false, RECURSIVE: true } }).allowed, false);
    });

    it('denies a field read through a macro variable, in an array, spelt in another case', () => {
      const decide = decider({ read_many: { allow: 'args.files.all(f, !has(f.path) || f.path.startsWith("/public/"))' } });
      assert.equal(decide('read_many', { files: [{ path: '/public/a' }] }).allowed, true);
      assert.equal(decide('read_many', { files: [{ path: '/public/a' }, { Path: '/etc/shadow' }] }).allowed, false);
    });

    it('denies a name the policy reads as a string, with or without escapes (`args["path"]`, `"pa\\u0074h" in args`)', () => {
      const decide = decider({ a: { allow: '!("pa\\u0074h" in args) || args["path"].startsWith("/public/")' } });
      assert.equal(decide('a', { path: '/public/x' }).allowed, true);
      assert.equal(decide('a', { pAth: '/etc/shadow' }).allowed, false);
    });

    it('denies a name the policy reads behind a comment, an escape or a concatenation; serves the values it compares', () => {
      const commented = decider({ a: { allow: '// don\'t allow /etc\n!("path" in args) || !args["path"].startsWith("/etc") // it\'s fine' } });
      assert.equal(commented('a', { path: '/srv/x' }).allowed, true);
      assert.equal(commented('a', { Path: '/etc/passwd' }).allowed, false);
      assert.equal(decider({ a: { allow: '!("pa\\x74h" in args)' } })('a', { Path: '/etc/passwd' }).allowed, false);
      assert.equal(decider({ a: { allow: '!("pa" + "th" in args)' } })('a', { PATH: '/etc/passwd' }).allowed, false);
      // A string compared with an argument's value names no argument: an argument spelt like it is served.
      assert.equal(decider({ a: { allow: 'args.action != "Delete"' } })('a', { action: 'archive', delete: false }).allowed, true);
      assert.equal(decider({ a: { allow: 'args.format == "JSON"' } })('a', { format: 'JSON', json: {} }).allowed, true);
      assert.equal(decider({ a: { allow: 'args.sql.startsWith("SELECT")' } })('a', { sql: 'SELECT 1', select: [] }).allowed, true);
      assert.equal(decider({ a: { allow: '"Admins" in user.groups || args.owner == user.email' } })('a', { owner: 'ada@example.com', admins: [] }).allowed, true);
    });

    it('refuses two spellings of one name anywhere under a policy that computes the names it reads', () => {
      const decide = decider({ a: { allow: 'args.exists(k, k.startsWith("pa") && args[k].startsWith("/public/"))' } });
      assert.equal(decide('a', { path: '/public/x' }).allowed, true);
      assert.equal(decide('a', { path: '/public/x', PATH: '/etc/passwd' }).allowed, false);
    });

    it('serves a map of PATH and path under a policy that does not read such a name, and names the caller has', () => {
      const env = { env: { PATH: '/usr/bin', path: 'x' }, Email: 'someone@example.com' };
      // A default that decides by the caller alone never reads the arguments.
      assert.equal(decider({}, { allow: '"staff" in user.groups' })('run', env).allowed, true);
      // One that reads other arguments, and the caller's email: `Email` is no argument it reads.
      assert.equal(decider({ run: { allow: 'args.mailbox == user.email' } })('run', { ...env, mailbox: 'ada@example.com' }).allowed, true);
      // One that reads `path`: the map's PATH is refused with it, a refusal, never an allow.
      assert.equal(decider({ run: { allow: '!has(args.path)' } })('run', env).allowed, false);
    });
  });

  describe('arguments of another type than the values the policy compares them with', () => {
    const caller = { subject: 'tenant/ada', clientId: 'client-1', email: 'ada@example.com', groups: ['staff'], scopes: ['mcp:tools'] } as unknown as Parameters<typeof decideArguments>[1]['caller'];
    const decide = (allow: string, args: unknown) => {
      const [route] = configSchema.parse({ routes: [{ path: '/files', backend: 'http://127.0.0.1:1/mcp', tools: { t: { allow } } }] }).routes;
      return decideArguments(compileArgumentPolicies(route!), { tool: 't', args, annotations: {}, caller });
    };
    const refusedAsUnjudgeable = (allow: string, args: unknown) => {
      const decision = decide(allow, args);
      assert.equal(decision.allowed, false, `${allow} with ${JSON.stringify(args)}`);
      return decision;
    };

    it('refuses them however the comparison is written: CEL found "true" != true, and a lenient backend reads "true" as true', () => {
      const deleteFile = 'args.recursive != true && !args.path.startsWith("/etc")';
      assert.equal(decide(deleteFile, { path: '/tmp/x', recursive: false }).allowed, true);
      assert.equal(decide(deleteFile, { path: '/tmp/x', recursive: true }).allowed, false);
      for (const recursive of ['true', 1, 'yes', 'True', [true], { value: true }]) {
        const decision = refusedAsUnjudgeable(deleteFile, { path: '/tmp/x', recursive });
        assert.equal(decision.reason, 'the policy of this tool could not be evaluated for these arguments');
        assert.match(decision.detail ?? '', /compares|no such overload/);
      }
      // The same through negation, a macro, cel.bind, a negative number, an unsigned literal, a list lookup.
      refusedAsUnjudgeable('!(args.recursive == true)', { recursive: 'true' });
      refusedAsUnjudgeable('args.recursive == false', { recursive: 'false' });
      refusedAsUnjudgeable('![true].exists(v, v == args.recursive)', { recursive: 'true' });
      refusedAsUnjudgeable('cel.bind(t, true, args.recursive != t)', { recursive: 'true' });
      refusedAsUnjudgeable('args.n != -1', { n: '-1' });
      refusedAsUnjudgeable('args.n != 1u', { n: '1' });
      refusedAsUnjudgeable('args.opts[0] != true', { opts: ['true'] });
      const listed = refusedAsUnjudgeable('!(args.recursive in [true])', { recursive: 'true' });
      assert.equal(listed.reason, 'the argument recursive is a string, which the policy looks up only among boolean values');
      refusedAsUnjudgeable('!(args["n"] in [-1, -2])', { n: '-1' });
      // What the policy's own types allow still passes: numbers of any kind with each other, a null where null is
      // compared or listed, another type where the other side of || decides.
      assert.equal(decide('args.x == 1', { x: 1.0 }).allowed, true);
      assert.equal(decide('args.count > 0', { count: 0.5 }).allowed, true);
      assert.equal(decide('args.note == null || args.note != true', { note: null }).allowed, true);
      assert.equal(decide('args.mode == null || args.mode in ["fast"]', { mode: null }).allowed, true);
      assert.equal(decide('args.x == 1 || args.x.startsWith("safe")', { x: 'safe-1' }).allowed, true);
      assert.equal(decide('args.level == "high" || args.level == 3', { level: 3 }).allowed, true);
      assert.equal(decide('args.owner == user.email', { owner: 'ada@example.com' }).allowed, true);
    });

    it('refuses a call the policy refuses as a lenient server reads its arguments, in lists and maps and whatever the shape', () => {
      const cases: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
        // [policy, arguments as typed (refused), the same as a lenient server reads them from other JSON]
        ['!args.channels.exists(c, c in [1, 2]) && !(1 in args.channels)', { channels: [1] }, { channels: ['1'] }],
        ['cel.bind(blocked, [1, 2], !(args.channel in blocked))', { channel: 1 }, { channel: '1' }],
        ['!(args.ids[0] in [1, 2])', { ids: [1] }, { ids: ['1'] }],
        ['args.flags != [true]', { flags: [true] }, { flags: ['true'] }],
        ['args.flags != [true]', { flags: [true] }, { flags: ['yes'] }],
        ['args.opts != {"recursive": true}', { opts: { recursive: true } }, { opts: { recursive: 'true' } }],
        ['!has(args.opts.recursive) || args.opts.recursive != true', { opts: { recursive: true } }, { opts: '{"recursive": true}' }],
        ['!(type(args.recursive) == bool && args.recursive)', { recursive: true }, { recursive: 'on' }],
        ['!(args.n == 1)', { n: 1 }, { n: true }],
        ['args.mode != [1, 2]', { mode: [1, 2] }, { mode: ['1', '2.0'] }],
        ['args.amounts != [1.0]', { amounts: [1.0] }, { amounts: ['1.'] }],
        // A JSON string parsed by the backend, and its values read leniently in turn.
        ['!has(args.opts.recursive) || args.opts.recursive != true', { opts: { recursive: true } }, { opts: '{"recursive": "true"}' }],
        ['!(1 in args.ids)', { ids: [1] }, { ids: '["1"]' }],
      ];
      for (const [allow, typed, lenient] of cases) {
        assert.equal(decide(allow, typed).allowed, false, `${allow} refuses ${JSON.stringify(typed)}`);
        const decision = decide(allow, lenient);
        assert.equal(decision.allowed, false, `${allow} must refuse ${JSON.stringify(lenient)} too`);
      }
      // One argument read otherwise can break a whole reading (a path "1" read as a number fails startsWith): the
      // boolean read beside it is still found, one argument at a time.
      const poisoned = 'args.path.startsWith("/tmp") || args.path == "1" ? args.flags != [true] : false';
      assert.equal(decide(poisoned, { path: '1', flags: [false] }).allowed, true);
      assert.equal(decide(poisoned, { path: '1', flags: [true] }).allowed, false);
      const singled = decide(poisoned, { path: '1', flags: ['true'] });
      assert.equal(singled.allowed, false);
      assert.equal(singled.detail, 'refused with the arguments read as booleans, one field at a time');
      // The decoy and the value read otherwise in one argument (a Pydantic model's two fields): still found.
      const nested = '!(1 in args.msg.channels) || args.msg.title.startsWith("[approved]")';
      assert.equal(decide(nested, { msg: { title: 'hi', channels: [1] } }).allowed, false);
      assert.equal(decide(nested, { msg: { title: '1', channels: ['1'] } }).allowed, false);
      assert.equal(decide(nested, { msg: { title: '1', channels: ['2'] } }).allowed, true);
      // An ordinary model argument with many numeral fields is tried field by field, not refused for their number.
      const manyFields = Object.fromEntries(Array.from({ length: 40 }, (_, index) => [`f${index}`, String(100 + index)]));
      assert.equal(decide('args.msg.title != "forbidden" && !(1 in args.msg.channels)', { msg: { title: '2024', channels: [2], ...manyFields } }).allowed, true);
      // A handful of unnamed fields beside a long list, and a policy that also computes names: judged, not refused.
      const beside = { path: '1', opts: { ...Object.fromEntries(Array.from({ length: 12 }, (_, index) => [`n${index}`, String(index + 2)])), tags: Array.from({ length: 5_000 }, (_, index) => String(index)) } };
      assert.equal(decide('!args.path.startsWith("/secret") && !args.opts.tags.exists(t, t == "secret")', beside).allowed, true);
      // Two fields that refuse only read otherwise together, beside the one that broke the whole reading.
      const together = '!(1 in args.a && 1 in args.b) || args.label.startsWith("[approved]")';
      assert.equal(decide(together, { a: [1], b: [1], label: 'x' }).allowed, false);
      assert.equal(decide(together, { a: ['1'], b: ['1'], label: '1' }).allowed, false);
      // Many values of one argument are read together, as the backend reads them: no one-at-a-time explosion.
      assert.equal(decide('!args.tags.exists(t, t == "secret")', { tags: Array.from({ length: 5_000 }, () => '1') }).allowed, true);
      assert.equal(decide(poisoned, { path: '1', flags: Array.from({ length: 70 }, () => 'no') }).allowed, true);
      // A JSON string the gateway cannot judge so (a number past 2^53 in it, or too large) refuses the call.
      assert.match(decide('!has(args.opts.channel) || args.opts.channel != 5', { opts: '{"channel": 1234567890123456789}' }).reason ?? '', /more ways than the gateway judges/);
      assert.match(decide('!has(args.opts.a) || args.opts.a != 5', { opts: `[${'1,'.repeat(40_000)}1]` }).reason ?? '', /more ways than the gateway judges/);
      // A string the policy looks up only among strings is read as nothing else.
      assert.equal(decide('args.confirm in ["yes", "no"]', { confirm: 'yes' }).allowed, true);
      assert.equal(decide('args.mode in ["on", "off"] && args.account in ["1001", "1002"]', { mode: 'on', account: '1001' }).allowed, true);
      // Values under names the policy does not read are not read otherwise (nor counted).
      assert.equal(decide('args.recursive != true', { recursive: false, other: Array.from({ length: 70 }, () => 'yes') }).allowed, true);
      // A reading the policy cannot evaluate refuses nothing: strings that only look like booleans or numbers, where
      // the policy reads strings, pass.
      assert.equal(decide('args.query != "drop" && args.path.startsWith("/public/")', { query: 'true', path: '/public/1' }).allowed, true);
      assert.equal(decide('args.page >= 1 && args.title.size() < 100', { page: 1, title: '0' }).allowed, true);
      assert.equal(decide('args.tags.all(t, t != "secret")', { tags: ['1', 'yes', '{"a":1}'] }).allowed, true);
    });

    const nestedPoliciesOf = (allow: string) => compileArgumentPolicies(configSchema.parse({ routes: [{ path: '/x', backend: 'http://127.0.0.1:1/mcp', tools: { t: { allow } } }] }).routes[0]!);

    it("type-checks the arguments the policy reads against the tool's approved input schema, where the route pins one", () => {
      const [route] = configSchema.parse({ routes: [{ path: '/files', backend: 'http://127.0.0.1:1/mcp', tools: { t: { allow: 'args.recursive != true && args.label == "ok"' } } }] }).routes;
      const policies = compileArgumentPolicies(route!);
      const inputSchema = {
        type: 'object',
        properties: { recursive: { type: 'boolean' }, label: { type: 'string' }, ids: { type: 'array', items: { type: 'integer' } }, note: { anyOf: [{ type: 'string' }, { type: 'null' }] } },
      };
      const judge = (args: Record<string, unknown>) => decideArguments(policies, { tool: 't', args, annotations: {}, inputSchema, caller });
      assert.equal(judge({ recursive: false, label: 'ok' }).allowed, true);
      // A label of "1" would make every lenient reading fail: the schema says it is a string, so none is needed.
      assert.equal(judge({ recursive: false, label: 'ok', ids: ['x'] }).allowed, true, 'an argument the policy does not read is the backend\'s business');
      const refused = judge({ recursive: 'false', label: 'ok' });
      assert.equal(refused.allowed, false);
      assert.equal(refused.reason, "the argument recursive is a string; the tool's approved schema declares boolean");
      assert.equal(judge({ recursive: false, label: 7 }).reason, "the argument label is an integer; the tool's approved schema declares string");
      // A string the schema allows beside other types (or as JSON content) may be parsed by the backend: still read so.
      const [paths] = configSchema.parse({ routes: [{ path: '/p', backend: 'http://127.0.0.1:1/mcp', tools: { t: { allow: 'type(args.paths) == string ? !args.paths.startsWith("/etc") : args.paths.all(p, !p.startsWith("/etc"))' } } }] }).routes;
      const pathsPolicies = compileArgumentPolicies(paths!);
      const union = { type: 'object', properties: { paths: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] } } };
      const json = { type: 'object', properties: { paths: { type: 'string', contentMediaType: 'application/json' } } };
      for (const schema of [union, json]) {
        assert.equal(decideArguments(pathsPolicies, { tool: 't', args: { paths: '["/etc/passwd"]' }, annotations: {}, inputSchema: schema, caller }).allowed, false);
        assert.equal(decideArguments(pathsPolicies, { tool: 't', args: { paths: '/tmp/a' }, annotations: {}, inputSchema: schema, caller }).allowed, true);
      }
      // A definition the backend changed since its approval (served under `warn`): its current schema may differ.
      assert.equal(decideArguments(policies, { tool: 't', args: { recursive: false, label: 'ok', ids: ['x'] }, annotations: {}, inputSchema, schemaChanged: true, caller }).allowed, true);
      // Inside a union's object branch, a member may be read by another branch: not taken as declared.
      const branches = { type: 'object', properties: { opts: { oneOf: [
        { type: 'object', properties: { kind: { type: 'string', const: 'a' }, channels: { type: 'array', items: { type: 'string' } } } },
        { type: 'object', properties: { kind: { type: 'string', const: 'b' }, channels: { type: 'array', items: { type: 'integer' } } } },
      ] } } };
      assert.equal(decideArguments(nestedPoliciesOf('!(args.opts.kind == "b" && 1 in args.opts.channels)'), { tool: 't', args: { opts: { kind: 'b', channels: ['1'] } }, annotations: {}, inputSchema: branches, caller }).allowed, false);
      // A schema nested past any reason (a union thousands deep) is refused as too costly, never a thrown error.
      let deep: Record<string, unknown> = { type: 'boolean' };
      for (let level = 0; level < 3_000; level++) deep = { anyOf: [deep] };
      const tooDeep = decideArguments(policies, { tool: 't', args: { recursive: false, label: 'ok' }, annotations: {}, inputSchema: { type: 'object', properties: { recursive: deep } }, caller });
      assert.equal(tooDeep.reason, "the arguments are too large to check against the tool's approved schema");
      // `nullable: true` (OpenAPI's spelling) admits null.
      assert.equal(decideArguments(nestedPoliciesOf('args.note == null || args.note != "x"'), { tool: 't', args: { note: null }, annotations: {}, inputSchema: { type: 'object', properties: { note: { type: 'string', nullable: true } } }, caller }).allowed, true);
      // Without a schema, the lenient readings judge (here: "false" errors against true, refused as unjudgeable).
      assert.equal(decideArguments(policies, { tool: 't', args: { recursive: 'false', label: 'ok' }, annotations: {}, caller }).allowed, false);
      // Nested types, unions and integers.
      const [nested] = configSchema.parse({ routes: [{ path: '/n', backend: 'http://127.0.0.1:1/mcp', tools: { t: { allow: '!(1 in args.ids) && (args.note == null || args.note != "x")' } } }] }).routes;
      const nestedPolicies = compileArgumentPolicies(nested!);
      const judgeNested = (args: Record<string, unknown>) => decideArguments(nestedPolicies, { tool: 't', args, annotations: {}, inputSchema, caller });
      assert.equal(judgeNested({ ids: [2, 3], note: null }).allowed, true);
      assert.equal(judgeNested({ ids: [2, 3], note: 'y' }).allowed, true);
      assert.equal(judgeNested({ ids: [2, '1'], note: 'y' }).reason, "the argument ids[1] is a string; the tool's approved schema declares integer");
      assert.equal(judgeNested({ ids: [2.5], note: 'y' }).reason, "the argument ids[0] is a number; the tool's approved schema declares integer");
    });

    it('compiles every comparison shape at start (one of a negation or of two literals threw there)', () => {
      for (const allow of ['!args.dryRun == false', '-args.n < 0', 'args.x > 0 || 1 == 1', 'args.x > 0 || null == null', 'args.x in [1] || true == true']) {
        assert.doesNotThrow(() => compileArgumentPolicies(configSchema.parse({ routes: [{ path: '/f', backend: 'http://127.0.0.1:1/mcp', tools: { t: { allow } } }] }).routes[0]!), allow);
      }
      assert.equal(decide('!args.dryRun == false', { dryRun: true }).allowed, true);
    });

    it('refuses a number past 2^53 under a name the policy reads: JSON.parse rounded it, a backend reading JSON exactly did not', () => {
      // The body's 1234567890123456789 is 1234567890123456800 once parsed: unequal to the literal, so it was allowed.
      const parsed = JSON.parse('{"channel":1234567890123456789,"size":1e300}') as Record<string, unknown>;
      const unjudgeable = 'an argument the policy checks is a number too large to judge exactly (past 2^53); send it as a string';
      for (const rule of ['args.channel != 1234567890123456789', 'args.channel != -1', 'args.channel in [1234567890123456768]', 'int(args.channel) != 1']) {
        assert.equal(decide(rule, parsed).reason, unjudgeable, rule);
      }
      assert.equal(decide('args.opts.id != 5', { opts: { id: -(2 ** 60) } }).reason, unjudgeable);
      // A large number the policy does not read is the backend's business.
      assert.equal(decide('args.channel != 7', { channel: 42, size: 1e300 }).allowed, true);
      assert.equal(decide('args.channel != 7', { channel: 2 ** 53 - 1 }).allowed, true);
    });
  });
});
