import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { checkConfigRules } from '../../src/config/config-rules.ts';
import { configSchema, routeSchema } from '../../src/config/schema.ts';
import { compileArgumentPolicies, decideArguments } from '../../src/proxy/argument-policy.ts';
import { parseMarkdown, readProjectFile } from './markdown.ts';

/**
 * The tool policy examples of docs/authorization.md run: each ```yaml tool-policy block is a route that must pass the
 * config rules, and the ```yaml tool-policy-cases block after it lists calls with the decision the page promises.
 */
const page = 'docs/authorization.md';
const blocks = parseMarkdown(readProjectFile(page)).blocks;

interface Case {
  tool: string;
  args?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
  user?: { email?: string; groups?: string[]; tenant?: string };
  expect: 'allow' | 'deny';
}

describe(`${page} tool policy examples`, () => {
  const routes = blocks.filter((block) => block.info === 'yaml tool-policy');
  it('has examples, each followed by its cases', () => {
    assert.ok(routes.length > 0);
    for (const route of routes) assert.equal(blocks[blocks.indexOf(route) + 1]?.info, 'yaml tool-policy-cases', `${page}:${route.line}`);
  });

  for (const block of routes) {
    it(`decides as the page says (${page}:${block.line})`, () => {
      const route = routeSchema.parse(parseYaml(block.body));
      const config = configSchema.parse({ routes: [route] });
      assert.deepEqual(checkConfigRules(config).problems.filter((problem) => problem.startsWith('routes[')), []);
      const policies = compileArgumentPolicies(route);
      const cases = parseYaml(blocks[blocks.indexOf(block) + 1]!.body) as Case[];
      for (const example of cases) {
        const caller = {
          scopes: ['mcp:tools'],
          groups: example.user?.groups ?? [],
          subject: 'tenant/someone',
          email: example.user?.email,
          tenant: example.user?.tenant,
          clientId: 'client-1',
        };
        const decision = decideArguments(policies, { tool: example.tool, args: example.args ?? {}, annotations: example.annotations ?? {}, caller });
        assert.equal(decision.allowed ? 'allow' : 'deny', example.expect, JSON.stringify(example));
        if (!decision.allowed) assert.ok(decision.reason, 'a denial has a reason');
      }
    });
  }
});
