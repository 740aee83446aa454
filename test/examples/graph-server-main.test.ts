import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';

/**
 * The sample server's command line, as its README runs it: a missing or unreadable credential is one line naming the
 * variable and exit code 2 — it was an uncaught error with a stack trace and the machine's file paths.
 */
const main = resolve(import.meta.dirname, '..', '..', 'examples', 'graph-server', 'main.ts');

function run(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const base = { PATH: process.env.PATH ?? '', GATEWAY_ISSUER: 'http://127.0.0.1:9', GRAPH_SERVER_AUDIENCE: 'http://127.0.0.1:9/mcp', PORT: '0' };
  const child = spawn(process.execPath, [main], { env: { ...base, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((done) => child.once('exit', (code) => done({ code, stderr })));
}

describe('examples/graph-server/main.ts', () => {
  for (const [label, env, named] of [
    ['no broker credential', {}, /BROKER_CLIENT_SECRET: .*BROKER_PRIVATE_KEY_FILE/],
    ['a key file that is not there', { BROKER_PRIVATE_KEY_FILE: '/nonexistent/key.pem' }, /BROKER_PRIVATE_KEY_FILE: ENOENT/],
  ] as const) {
    it(`refuses ${label} in one line, exit 2, no stack trace`, async () => {
      const { code, stderr } = await run(env);
      assert.equal(code, 2);
      assert.match(stderr, named);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.doesNotMatch(stderr, /\n\s+at |file:\/\//);
    });
  }
});
