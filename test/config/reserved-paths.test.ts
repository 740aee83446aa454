import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { startDemo, type RunningDemo } from '../support/demo-harness.ts';

/**
 * Every path Gatehouse serves itself is refused as a route's path by the config check, so a config `gatehouse config
 * check` passes never fails at `gatehouse start` (a route at `/` or `/favicon.ico` passed the check, then stopped the
 * start with Fastify's "already declared" and exit 1 instead of a problem line and exit 2). The paths are read from
 * the running demo's own route table, so a new endpoint is covered without editing this file.
 */
let demo: RunningDemo;
let dir: string;
before(async () => {
  demo = await startDemo();
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-reserved-'));
});
after(async () => {
  await demo?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The first path segment of every route Gatehouse registered (`/`, `/token`, `/admin`, `/.well-known/…`). */
function servedTopLevelPaths(printed: string): string[] {
  const paths = new Set<string>();
  for (const line of printed.split('\n')) {
    const match = /^(.*?── )(\S+)/.exec(line);
    if (!match?.[1] || !match[2]) continue;
    const depth = Math.round(match[1].length / 4);
    if (depth === 1) paths.add('/');
    // Depth 2: a child of `/`, written without its slash (`token`, `.well-known/oauth-authorization-server`).
    if (depth === 2) paths.add(`/${match[2].replace(/^\//, '').split('/')[0] ?? ''}`);
  }
  return [...paths];
}

function problemsFor(path: string): readonly string[] {
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(
    file,
    `server:\n  publicUrl: https://gatehouse.example.com\nupstream:\n  type: oidc\n  issuer: https://idp.example.com\n  clientId: gatehouse\n  clientAuth:\n    method: federated\nroutes:\n  - path: /mcp\n    backend: http://127.0.0.1:3000/mcp\n  - path: ${JSON.stringify(path)}\n    backend: http://127.0.0.1:3001/mcp\n`,
  );
  try {
    loadConfig({ file, env: {}, cwd: dir });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  return [];
}

describe("a route's path", () => {
  it("is refused for every path Gatehouse serves itself, with a problem line, not at start", () => {
    const configured = new Set(['/mcp', '/graph']);
    const served = servedTopLevelPaths(demo.gateway.app.printRoutes({ commonPrefix: false })).filter((path) => !configured.has(path));
    for (const expected of ['/', '/token', '/admin', '/.well-known', '/favicon.ico', '/account', '/callback']) assert.ok(served.includes(expected), `${expected} in ${served.join(' ')}`);
    for (const path of served) {
      for (const candidate of [path, path === '/' ? '/' : `${path}/below`]) {
        const problems = problemsFor(candidate);
        assert.ok(problems.some((problem) => problem.startsWith('routes[1].path:')), `${candidate}: ${problems.join(' | ') || 'accepted'}`);
      }
    }
  });
});
