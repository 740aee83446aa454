import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { argumentReadsOf, expressionReadsOf } from '../../src/config/argument-reads.ts';

/** What a tool policy reads of the arguments, from its syntax tree (the names whose other spellings are refused). */
describe('argument names a CEL tool policy reads', () => {
  const names = (source: string) => argumentReadsOf(source)?.names.sort();

  it('reads fields selected at any depth, and through a macro variable or cel.bind', () => {
    assert.deepEqual(names('!has(args.opts.recursive) || args.opts.recursive == false'), ['opts', 'recursive']);
    assert.deepEqual(names('args.files.all(f, !has(f.path) || f.path.startsWith("/public/"))'), ['files', 'path']);
    assert.deepEqual(names('cel.bind(a, args, !has(a.path) || a.path.startsWith("/public/"))'), ['path']);
  });

  it('reads constant keys however written: escapes as CEL decodes them, concatenations, a bound constant, a key compared', () => {
    for (const source of [
      '"pa\\x74h" in args',
      '"\\160ath" in args',
      '"\\U00000070ath" in args',
      '"p\\u0061th" in args',
      'r"path" in args',
      'args["pa" + "th"] == "x"',
      'cel.bind(p, "pa" + "th", args[p] == "x")',
      'args.exists(k, k == "path")',
      '"path" in args',
    ]) {
      assert.deepEqual(names(source), ['path'], source);
    }
  });

  it('reads nothing from comments, and not the values compared or searched', () => {
    assert.deepEqual(names('// don\'t allow /etc\n!("path" in args) || !args["path"].startsWith("/etc") // it\'s fine'), ['path']);
    assert.deepEqual(names('args.action != "Delete"'), ['action']);
    assert.deepEqual(names('args.format == "JSON"'), ['format']);
    assert.deepEqual(names('args.sql.startsWith("SELECT")'), ['sql']);
    assert.deepEqual(names('"Admins" in user.groups || args.owner == user.email'), ['owner']);
  });

  it("leaves out the caller's and the tool's fields, unless a macro binds their names to the arguments", () => {
    assert.deepEqual(names('args.mailbox == user.email && tool.annotations.readOnlyHint == true'), ['mailbox']);
    assert.deepEqual(names('args.items.exists(user, user.path == "x")'), ['items', 'path']);
  });

  it('says when names are computed, and is undefined for an expression that never reads the arguments', () => {
    assert.equal(argumentReadsOf('args.exists(k, k.startsWith("pa") && args[k].startsWith("/etc"))')?.computed, true);
    assert.equal(argumentReadsOf('args[user.email] == "x"')?.computed, true);
    assert.equal(argumentReadsOf('args.path == "x"')?.computed, false);
    assert.equal(argumentReadsOf('"staff" in user.groups'), undefined);
    assert.equal(argumentReadsOf('[1, 2].exists(args, args == 1)'), undefined, 'a macro variable named args is no argument');
  });

  it('reads a key tested against a list or map of names, or through cel.bind; any other use of a key is computed', () => {
    assert.deepEqual(names('!args.exists(k, k in ["path", "dir"])'), ['dir', 'path']);
    assert.deepEqual(names('!args.exists(k, k in {"path": 1})'), ['path']);
    assert.deepEqual(names('!args.exists(k, cel.bind(n, k, n == "path"))'), ['path']);
    assert.equal(argumentReadsOf('args.all(k, !args[k].startsWith("/etc"))')?.computed, false, 'every value read, whatever its name');
    for (const source of [
      '!args.exists(k, string(k) == "path")',
      '!args.exists(k, dyn(k) == "path")',
      '!args.exists(k, k + "" == "path")',
      '!args.map(k, {"n": k}).exists(m, m.n == "path")',
      'args.map(k, k) != ["path"]',
      'args.filter(k, k.startsWith("pa")).size() == 0',
    ]) {
      assert.equal(argumentReadsOf(source)?.computed, true, source);
    }
  });

  it('tells a policy that reads the tool beyond its name (its annotations, however spelt) from one that decides by caller', () => {
    assert.equal(expressionReadsOf('tool["annot\\x61tions"]["readOnlyHint"] == true').toolBeyondName, true);
    assert.equal(expressionReadsOf('dyn(tool)["annotations"]["readOnlyHint"] == true').toolBeyondName, true);
    assert.equal(expressionReadsOf('has(tool.annotations.readOnlyHint)').toolBeyondName, true);
    assert.equal(expressionReadsOf('tool.name == "x" && "staff" in user.groups // tool.annotations').toolBeyondName, false);
    assert.equal(expressionReadsOf('[{"annotations": 1}].exists(tool, tool.annotations == 1)').toolBeyondName, false);
  });

  it("reads args[f] as computed when f iterates another value's members, the keys of a literal map compared, and a numeric index as no name", () => {
    assert.equal(argumentReadsOf('args.fields.all(f, args[f] != "admin")')?.computed, true);
    assert.equal(argumentReadsOf('args.items.exists(e, args[e] == "x")')?.computed, true);
    assert.equal(argumentReadsOf('args.exists(k, args.nested[k] == 1)')?.computed, true);
    assert.equal(argumentReadsOf('args.all(k, args[k] != "admin")')?.computed, false, 'the value under each key of args itself');
    assert.deepEqual(names('args.opts != {"recursive": true}'), ['opts', 'recursive']);
    assert.deepEqual(names('args.items == [{"path": "/x", "mode": {"deep": 1}}]'), ['deep', 'items', 'mode', 'path']);
    const indexed = argumentReadsOf('args.items[0].path == "/x"');
    assert.deepEqual([indexed?.names.sort(), indexed?.computed], [['items', 'path'], false]);
  });

  it('reads the keys of a literal map wherever it meets the arguments, and a key no longer its own once a name is bound again', () => {
    for (const source of ['args.opts in [{"recursive": true}]', 'args.opts == dyn({"recursive": true})', 'cel.bind(m, {"recursive": true}, args.opts == m)', '[{"recursive": true}].exists(m, m == args.opts)']) {
      assert.ok(argumentReadsOf(source)?.names.includes('recursive'), source);
    }
    for (const source of ['cel.bind(v, args.a, v.all(k, cel.bind(v, args.b, v[k] == 1)))', 'args.exists(k, cel.bind(args, args.sub, args[k] == 1))']) {
      assert.equal(argumentReadsOf(source)?.computed, true, source);
    }
    // A key whose iterated name is bound again is still a key: its uses are read.
    assert.deepEqual(names('cel.bind(x, args, x.all(k, cel.bind(x, 1, k != "path")))'), ['path']);
    assert.deepEqual(names('cel.bind(x, args, x.all(k, cel.bind(x, 1, !(k in ["path"]))))'), ['path']);
    assert.equal(argumentReadsOf('args.all(k, cel.bind(args, 1, !k.startsWith("pa")))')?.computed, true);
    assert.equal(argumentReadsOf('cel.bind(x, args, x.all(k, cel.bind(x, k, !x.startsWith("pa"))))')?.computed, true);
  });
});

