import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { checkJsonRpcMessage, decodeMcpHeaderValue, parseMcpPost } from '../../src/proxy/mcp-message.ts';
import { memberNamesProblem } from '../../src/protocol/duplicate-members.ts';

const hasDuplicateMember = (text: string, parsed?: unknown) => (parsed === undefined ? memberNamesProblem(text) : memberNamesProblem(text, parsed)) === 'duplicate';
import { McpGatewayError } from '../../src/proxy/gateway-error.ts';

/**
 * The hand-written JSON-RPC check replaced a zod union on the hot path; it must accept exactly what that schema
 * accepted and read the same method, name and id from it. The schema is kept here as the reference, for the methods it
 * tries; the check refuses more methods than the schema did (white space, a judged method in another case), each
 * shown by a test of its own below.
 */
const requestId = z.union([z.string(), z.number().int().refine(Number.isSafeInteger)]);
const reference = z.union([
  z.object({ jsonrpc: z.literal('2.0'), id: requestId, method: z.string().min(1), params: z.record(z.string(), z.unknown()).optional() }),
  // A notification: no id, or null. A method message with an id that is no id (an object, a fraction) is neither.
  z.object({ jsonrpc: z.literal('2.0'), id: z.null().optional(), method: z.string().min(1), params: z.record(z.string(), z.unknown()).optional() }),
  z.object({ jsonrpc: z.literal('2.0'), id: requestId.nullable(), result: z.unknown(), method: z.never().optional() }),
  z.object({ jsonrpc: z.literal('2.0'), id: requestId.nullable(), error: z.object({ code: z.number(), message: z.string() }).loose(), method: z.never().optional() }),
]);

const ABSENT = Symbol('absent');
const choices: Record<string, unknown[]> = {
  jsonrpc: ['2.0', '1.0', 2, ABSENT],
  id: [1, 'a', '', 0, -3, 1.5, 2 ** 60, null, true, {}, ABSENT],
  method: ['tools/call', '', 3, null, ABSENT],
  params: [{ name: 'echo' }, {}, [], null, 'x', ABSENT],
  result: [1, null, {}, ABSENT],
  error: [{ code: 1, message: 'm' }, { code: 1, message: 'm', data: 2 }, { code: '1', message: 'm' }, { code: 1 }, [], null, ABSENT],
};

function* combinations(): Generator<Record<string, unknown>> {
  const names = Object.keys(choices);
  const walk = function* (index: number, current: Record<string, unknown>): Generator<Record<string, unknown>> {
    if (index === names.length) return yield { ...current };
    const name = names[index]!;
    for (const value of choices[name]!) {
      const next = { ...current };
      if (value !== ABSENT) next[name] = value;
      yield* walk(index + 1, next);
    }
  };
  yield* walk(0, {});
}

describe('checkJsonRpcMessage', () => {
  it('accepts exactly what the zod schema accepts, over every combination of fields', () => {
    let accepted = 0;
    let total = 0;
    for (const message of combinations()) {
      total++;
      const expected = reference.safeParse(message);
      const actual = checkJsonRpcMessage(message);
      assert.equal(actual !== undefined, expected.success, `disagree on ${JSON.stringify(message)}`);
      if (!expected.success) continue;
      accepted++;
      // What the gateway reads from a message (policy, audit, error ids) is the same.
      assert.equal('method' in actual!, 'method' in expected.data, `method presence differs on ${JSON.stringify(message)}`);
      const data = expected.data as { method?: string; id?: unknown; params?: { name?: unknown } };
      if (data.method === 'tools/call' && (typeof data.params?.name !== 'string' || data.params.name === '')) {
        // A tools/call without a tool name to judge is refused whole (-32602), never forwarded.
        assert.throws(() => parseMcpPost(Buffer.from(JSON.stringify(message))), (error: unknown) => (error as { jsonRpcCode?: number }).jsonRpcCode === -32602);
        continue;
      }
      const single = parseMcpPost(Buffer.from(JSON.stringify(message)));
      assert.equal(single.method, data.method);
      assert.equal(single.name, data.method === 'tools/call' && typeof data.params?.name === 'string' ? data.params.name : undefined);
      const id = 'method' in data ? data.id : (data as { id?: unknown }).id;
      assert.equal(single.requestId, 'method' in data && (typeof id === 'string' || typeof id === 'number') ? id : undefined);
    }
    assert.ok(accepted > 100 && accepted < total, `a meaningful split (${accepted} of ${total})`);
  });

  it('refuses a request whose id is no JSON-RPC id (the backend answered it as a request the gateway judged as a notification)', () => {
    for (const id of [{ a: 1 }, 1.5, 2 ** 100, 2 ** 53, [1], true, 'half \ud800 character']) {
      assert.equal(checkJsonRpcMessage({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo' } }), undefined, JSON.stringify(id));
      assert.throws(
        () => parseMcpPost(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo' } }))),
        (error: unknown) => error instanceof McpGatewayError && error.jsonRpcCode === -32600,
      );
    }
    // Two ids JavaScript reads as one number: refused before the batch's duplicate check could miss them.
    assert.throws(() => parseMcpPost(Buffer.from('[{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"},{"jsonrpc":"2.0","id":9007199254740992,"method":"ping"}]')));
    for (const id of [1, 'a', null, undefined]) assert.ok(checkJsonRpcMessage({ jsonrpc: '2.0', id, method: 'ping' }), String(id));
  });

  it('refuses a body that is not UTF-8, and a tool name or method with a lone surrogate, instead of judging a name the backend may read otherwise', () => {
    const latin1 = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret_tool'), Buffer.from([0xff]), Buffer.from('"}}')]);
    assert.throws(() => parseMcpPost(latin1), (error: unknown) => error instanceof McpGatewayError && error.jsonRpcCode === -32700 && /UTF-8/.test(error.message));
    const overlong = Buffer.from([...Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"'), 0xc0, 0xaf, ...Buffer.from('"}}')]);
    assert.throws(() => parseMcpPost(overlong), (error: unknown) => error instanceof McpGatewayError && error.jsonRpcCode === -32700);
    assert.throws(
      () => parseMcpPost(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret_tool\\ud800"}}')),
      (error: unknown) => error instanceof McpGatewayError && error.jsonRpcCode === -32602,
    );
    assert.equal(checkJsonRpcMessage({ jsonrpc: '2.0', id: 1, method: 'tools/call\udc00', params: {} }), undefined);
    // Whole characters beyond ASCII, and a pair of surrogates, are names like any other.
    assert.equal(parseMcpPost(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"r\u00e9sum\u00e9_\ud83d\ude00"}}')).name, 'résumé_😀');
  });

  it('reads a base64 Mcp-Name only when its bytes are UTF-8 (secret_tool\\xff decoded to secret_tool\\ufffd matched a body naming that)', () => {
    assert.equal(decodeMcpHeaderValue(`=?base64?${Buffer.from('écho').toString('base64')}?=`), 'écho');
    assert.equal(decodeMcpHeaderValue('=?base64?c2VjcmV0X3Rvb2z/?='), undefined);
  });

  it('refuses what is not an object', () => {
    for (const item of [null, 1, 'x', [], true]) assert.equal(checkJsonRpcMessage(item), undefined);
  });

  it('refuses a method the gateway judges spelt in another case (a backend routing without case ran it unjudged), and no other', () => {
    for (const method of ['Tools/Call', 'TOOLS/CALL', 'tools/List', 'Tasks/Get', 'resources/Read', 'toolſ/call', 'taſks/get', 'Subscriptions/Listen']) {
      assert.equal(checkJsonRpcMessage({ jsonrpc: '2.0', id: 1, method, params: { name: 'x' } }), undefined, method);
    }
    for (const method of ['tools/call', 'tools/list', 'notifications/Custom', 'Custom/Method']) {
      assert.ok(checkJsonRpcMessage({ jsonrpc: '2.0', id: 1, method, params: {} }), method);
    }
  });
});

describe('a member named twice in one object', () => {
  // JSON.parse keeps the last; a backend parser keeping the first (or refusing) would read another message.
  it('is found at any depth, with escaped names decoded, and not across objects, arrays or inside strings', () => {
    const duplicated = [
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret_tool","name":"echo"}}',
      '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}',
      '{"a":{"b":[{"c":1,"c":2}]}}',
      '{"name":1,"n\\u0061me":2}',
      '[{"id":1},{"x":1,"x":2}]',
    ];
    for (const text of duplicated) assert.equal(hasDuplicateMember(text), true, text);
    const unique = [
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":"x","text":"\\"name\\":1,"}}}',
      '[{"id":1,"method":"a"},{"id":2,"method":"b"}]',
      '{"a":[1,"a",{"a":2}],"b":{"a":3}}',
      '{"s":"a \\\\\\" , { \\"k\\":1, \\"k\\":2 }"}',
      '{}',
      '[]',
    ];
    for (const text of unique) assert.equal(hasDuplicateMember(text), false, text);
    // The parse given, as the MCP POST passes its own: the same answers.
    for (const text of [...duplicated, ...unique]) assert.equal(hasDuplicateMember(text, JSON.parse(text)), duplicated.includes(text), text);
  });

  it('is found where the dropped value held objects of its own, or where colons sit in names and strings', () => {
    const duplicated = [
      '{"a":{"b":{"c":1},"d":[{"e":2}]},"a":{"b":{"c":1},"d":[{"e":2}]}}',
      '{"a:b":1,"a:b":{"x:":":"}}',
      '{"x":[[[{"k":{"k":1,"k":{}}}]]]}',
    ];
    for (const text of duplicated) assert.equal(hasDuplicateMember(text), true, text);
    for (const text of ['{"a:b":"c:d","e":{"f:":":"}}', '{"\\":":","\\\\":1}']) assert.equal(hasDuplicateMember(text), false, text);
  });

  it('reads names written with escapes on their own: a duplicate among them is found, a name the parse holds otherwise is refused', () => {
    // Escaped names, read right: nothing to refuse, at any depth and in arrays.
    for (const text of ['{"caf\\u00e9":1,"b":[{"\\u0061":2},{"a":3}]}', '{"a":{"x\\"y":{"z":[1,{"\\/":2}]}}}', '[{"n\\u0061me":1},{"name":2}]']) {
      assert.equal(memberNamesProblem(text), undefined, text);
    }
    assert.equal(memberNamesProblem('{"name":"echo","nam\\u0065":"secret_tool"}'), 'duplicate');
    assert.equal(memberNamesProblem('{"a":{"b":{"k":1},"b":2},"c":[{"\\u006b":1}]}'), 'duplicate');
    // A parse that holds another name than the text wrote (what V8's JSON.parse in Node 24 returns once it has seen
    // a member named `nam\`): given here, so the check is tested whatever the engine does today.
    const text = '{"params":{"nam\\u0065":"secret_tool","arguments":{}}}';
    assert.equal(memberNamesProblem(text, { params: { 'nam\\': 'secret_tool', arguments: {} } }), 'misread');
    assert.equal(memberNamesProblem(text, JSON.parse('{"params":{"name":"secret_tool","arguments":{}}}')), undefined);
    // An object where the parse has none at that place.
    assert.equal(memberNamesProblem('{"a\\u0062":{"c":1}}', { 'a\\': { c: 1 }, ab: 1 }), 'misread');
  });

  it("refuses the engine's own misreading after the warm-up that causes it: a POST judged as one tool and run as another", () => {
    for (let round = 0; round < 3; round++) JSON.parse('{"name":1,"nam\\\\":2}');
    const attack = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","nam\\u0065":"secret_tool","arguments":{}}}';
    assert.throws(() => parseMcpPost(Buffer.from(attack)), (error: unknown) => error instanceof McpGatewayError && error.jsonRpcCode === -32600);
    for (let round = 0; round < 3; round++) JSON.parse('{"pat\\\\":1}');
    const hidden = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","arguments":{"pat\\u0068":"/etc/shadow"}}}';
    const misread = !Object.hasOwn((JSON.parse(hidden) as { params: { arguments: object } }).params.arguments, 'path');
    if (misread) assert.throws(() => parseMcpPost(Buffer.from(hidden)), /could not be read as written/);
    else assert.equal(parseMcpPost(Buffer.from(hidden)).name, 'read');
  });

  it('reads a body of many strings in one pass (no search back through the text from each string)', () => {
    // Must finish, and counts nothing: 400,000 strings took minutes when each string looked back for a backslash.
    const many = `[${Array.from({ length: 200_000 }, (_, index) => `{"k":"v${index}"}`).join(',')}]`;
    assert.equal(memberNamesProblem(many), undefined);
    assert.equal(memberNamesProblem(`${many.slice(0, -1)},{"k\\u0031":1,"k1":2}]`), 'duplicate');
  });

  it('counts a body nested far deeper than any stack without overflowing it', () => {
    const depth = 200_000;
    const nested = `${'{"a":['.repeat(depth)}1${']}'.repeat(depth)}`;
    assert.equal(hasDuplicateMember(nested), false);
    const withDuplicate = `${'{"a":['.repeat(depth)}{"k":1,"k":2}${']}'.repeat(depth)}`;
    assert.equal(hasDuplicateMember(withDuplicate), true);
  });

  it('counts only own members: an enumerable member added to Object.prototype hides no duplicate', () => {
    Object.defineProperty(Object.prototype, 'polluted', { value: 1, enumerable: true, configurable: true });
    try {
      assert.equal(hasDuplicateMember('{"name":1,"name":2}'), true);
      assert.equal(hasDuplicateMember('{"name":1}'), false);
    } finally {
      delete (Object.prototype as Record<string, unknown>).polluted;
    }
  });

  it('makes a POST invalid (-32600), so no backend reads another call than the one judged', () => {
    assert.throws(
      () => parseMcpPost(Buffer.from('{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"secret_tool","name":"echo"}}')),
      (error: unknown) => error instanceof McpGatewayError && error.jsonRpcCode === -32600,
    );
  });
});

describe('a member a case-insensitive parser reads otherwise (Go encoding/json, as mcp-go decodes messages)', () => {
  // Each was judged as one message by the gateway and run as another by a Go backend: Go binds keys to fields
  // case-insensitively, by Unicode folding (ſ is s, the Kelvin sign is k), keeping the last that matches.
  const ambiguous = [
    ['a method only Go sees', '{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"delete_everything","arguments":{}}}'],
    ['a second tool name', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok_tool","Name":"delete_everything"}}'],
    ['arguments spelt with a long s', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/public/x"},"argument\u017f":{"path":"/etc/passwd"}}}'],
    ['params spelt with a long s', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok_tool"},"param\u017f":{"name":"admin_panel"}}'],
    ['a response that is a call to Go', '{"jsonrpc":"2.0","id":7,"result":{},"Method":"tools/call","params":{"name":"delete_everything"}}'],
    ['a letter beyond the Basic Multilingual Plane in two cases (Deseret)', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"\u{10400}":1,"\u{10428}":2}}}'],
    ['a Kelvin sign', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","\u212aey":1,"key":2}}'],
    ['two _meta members in two cases', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"progressToken":1,"ProgressToken":2}}}'],
    ['a misspelt method in a batch', '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"METHOD":"tools/call","params":{"name":"x"}}]'],
  ] as const;
  for (const [what, text] of ambiguous) {
    it(`is refused (-32600): ${what}`, () => {
      assert.throws(() => parseMcpPost(Buffer.from(text)), (error: unknown) => error instanceof McpGatewayError && error.jsonRpcCode === -32600);
    });
  }

  it('leaves the arguments to the argument policy, which alone reads them: a map of PATH and path is served', () => {
    for (const args of ['{"env":{"PATH":"/usr/bin","path":"x"},"headers":{"Content-Type":"a","content-type":"b"}}', '{"PATH":"/usr/bin","path":"x"}', '{"strasse":1,"straße":2,"\u0131d":3,"id":4}']) {
      const post = parseMcpPost(Buffer.from(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run","arguments":${args}}}`));
      assert.equal(post.name, 'run', args);
    }
  });

  it('leaves argument names of any case alone when they do not collide, and the members spelt as named', () => {
    const post = parseMcpPost(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"Text":"x","Name":"y"},"_meta":{"progressToken":1}}}'));
    assert.equal(post.name, 'echo');
    assert.equal(parseMcpPost(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t1"}}')).name, 't1');
  });
});
