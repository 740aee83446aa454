import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, loadConfig, type LoadedConfig } from '../../src/config/load.ts';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function writeConfig(text: string): string {
  const file = join(dir, `config-${++fileCount}.yaml`);
  writeFileSync(file, text);
  return file;
}

const VALID = `
server:
  publicUrl: https://gatehouse.example.com
upstream:
  type: oidc
  issuer: https://idp.example.com
  clientId: gatehouse
  clientAuth:
    method: federated
routes:
  - path: /mcp
    backend: http://127.0.0.1:3000/mcp
`;

function load(text: string, env: NodeJS.ProcessEnv = {}): LoadedConfig {
  return loadConfig({ file: writeConfig(text), env, cwd: dir });
}

function problemsOf(text: string, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    load(text, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    for (const problem of error.problems) assert.ok(!problem.includes('\n'), `one line per problem: ${problem}`);
    return error.problems;
  }
  assert.fail('the config was accepted');
}

describe('loadConfig: a valid production file', () => {
  it('loads with defaults filled in and the issuer without a trailing slash', () => {
    const loaded = load(VALID.replace('https://gatehouse.example.com', 'https://gatehouse.example.com/'));
    assert.equal(loaded.config.mode, 'production');
    assert.equal(loaded.publicUrl, 'https://gatehouse.example.com');
    assert.equal(loaded.config.routes[0]?.requiredScopes[0], 'mcp:tools');
    assert.equal(loaded.config.server.port, 8080);
    assert.deepEqual(loaded.warnings, []);
  });

  it('refuses two tool entries of one route that name one tool (the call check folds names; tools/list hid both)', () => {
    const problems = problemsOf(`${VALID}    tools:\n      Search:\n        groups: [admins]\n      search: {}\n`);
    assert.ok(problems.some((problem) => problem.startsWith('routes[0].tools: "Search" and "search" name one tool')), problems.join('\n'));
  });

  it('warns of a tool policy that computes the argument names it reads (their other spellings cannot be refused)', () => {
    const withPolicy = (allow: string) => `${VALID}    tools:\n      read_file:\n        allow: ${JSON.stringify(allow)}\n`;
    const computed = load(withPolicy('args.exists(k, k.startsWith("pa") && args[k].startsWith("/public/"))'));
    assert.equal(computed.warnings.length, 1, computed.warnings.join('\n'));
    assert.match(computed.warnings[0]!, /^routes\[0\]\.tools\.read_file\.allow: reads argument names it computes .* write the names out/);
    assert.deepEqual(load(withPolicy('!has(args.path) || args.path.startsWith("/public/")')).warnings, []);
  });

  it('warns of an audit file whose directory is missing, relative to the file; none for one that exists', () => {
    // Found only after start before, as an error line per batch: `config check` and `doctor` passed.
    const missing = load(`${VALID}audit:\n  output: logs/audit.jsonl\n`);
    assert.deepEqual(missing.warnings, [`audit.output: the directory "${join(dir, 'logs')}" does not exist: no audit line will be written to the file (the records still go to the store)`]);
    assert.deepEqual(load(`${VALID}audit:\n  output: audit.jsonl\n`).warnings, []);
    assert.deepEqual(load(`${VALID}audit:\n  output: stdout\n`).warnings, []);
  });

  it('refuses a tool policy expression that does not compile or is not boolean, naming the field', () => {
    const withPolicies = VALID.replace(
      '    backend: http://127.0.0.1:3000/mcp',
      [
        '    backend: http://127.0.0.1:3000/mcp',
        '    defaultToolPolicy: { allow: "user.email" }',
        '    tools:',
        '      send_mail: { allow: "args.mailbox == user.emial" }',
        '      read_mail: { allow: "args.mailbox ==" }',
        '      ok_tool: { allow: "args.mailbox == user.email" }',
      ].join('\n'),
    );
    const problems = problemsOf(withPolicies);
    assert.ok(problems.some((p) => p.startsWith('routes[0].defaultToolPolicy.allow: must be a boolean expression')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('routes[0].tools.send_mail.allow: No such key: emial')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('routes[0].tools.read_mail.allow:')), problems.join('\n'));
    assert.ok(!problems.some((p) => p.includes('ok_tool')), problems.join('\n'));
  });

  it('refuses a route body limit above the server one, and accepts one below it', () => {
    const withLimit = (bytes: number) => VALID.replace('    backend: http://127.0.0.1:3000/mcp', `    backend: http://127.0.0.1:3000/mcp\n    bodyLimitBytes: ${bytes}`);
    const problems = problemsOf(withLimit(8 * 1024 * 1024));
    assert.ok(problems.some((p) => p.startsWith('routes[0].bodyLimitBytes: 8388608 is more than server.bodyLimitBytes (4194304)')), problems.join('\n'));
    assert.equal(load(withLimit(1024 * 1024), {}).config.routes[0]?.bodyLimitBytes, 1024 * 1024);
  });

  it('refuses a revocation staleness bound under two re-reads of the list, and takes 0 (no bound) or 10', () => {
    const withBound = (seconds: number) => `${VALID}authorization:\n  revocationMaxStalenessSeconds: ${seconds}\n`;
    const problems = problemsOf(withBound(3));
    assert.ok(problems.some((p) => p.startsWith('authorization.revocationMaxStalenessSeconds: must be 0 (no bound) or at least 10')), problems.join('\n'));
    assert.equal(load(withBound(0)).config.authorization.revocationMaxStalenessSeconds, 0);
    assert.equal(load(withBound(10)).config.authorization.revocationMaxStalenessSeconds, 10);
  });

  it('refuses a required scope that only Object.prototype has (toString), naming it', () => {
    const problems = problemsOf(VALID.replace('    backend: http://127.0.0.1:3000/mcp', '    backend: http://127.0.0.1:3000/mcp\n    requiredScopes: [toString]'));
    assert.ok(problems.some((p) => p.startsWith('routes[0].requiredScopes: "toString" is not one of this route\'s scopes')), problems.join('\n'));
    // A route with scopes of its own and no requiredScopes: the problem says the default is what does not fit.
    const ownScopes = problemsOf(VALID.replace('    backend: http://127.0.0.1:3000/mcp', '    backend: http://127.0.0.1:3000/mcp\n    scopes: { "api:read": "Read" }'));
    assert.ok(ownScopes.some((p) => p.includes('"mcp:tools" (what requiredScopes is by default)') && p.endsWith('set requiredScopes to the scopes every request must carry')), ownScopes.join('\n'));
  });

  it('treats an empty file as all defaults (and so reports the missing production settings)', () => {
    const problems = problemsOf('');
    assert.ok(problems.some((p) => p.startsWith('server.publicUrl: required in production')));
    assert.ok(problems.some((p) => p.startsWith('upstream: required in production')));
    assert.ok(problems.some((p) => p.startsWith('routes: at least one route')));
  });
});

describe('loadConfig: malformed input', () => {
  it('reports malformed YAML with line and column, without echoing the source', () => {
    const problems = problemsOf('server:\n  port: 8080\n  publicUrl: [https://x\nsecret: hunter2-value\n');
    assert.equal(problems.length >= 1, true);
    assert.match(problems[0] ?? '', /^line \d+, column \d+: .+\(YAML syntax\)$/);
    assert.ok(problems.every((p) => !p.includes('hunter2-value')));
  });

  it('refuses collections nested past any configuration in one short problem, before the YAML parser recurses into them', () => {
    // Half a million levels parsed recursively held a reload's event loop for seconds and logged one line per level;
    // the depth is read with YAML's own lexer, so a quote elsewhere (`the '90s`) or a block scalar cannot hide it.
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    for (const [text, line] of [
      [`routes: ${deep}\n`, 1],
      [`a: the '90s\nroutes: ${deep}\n`, 2],
      [`a: |\n  a stray " quote\nroutes: ${deep}\n`, 3],
      [`routes: [-'${deep}\n`, 1],
      [`routes:\n${'- '.repeat(100_000)}x\n`, 2],
      [`${'? '.repeat(100_000)}x\n`, 1],
    ] as const) {
      assert.deepEqual(problemsOf(text), [`line ${line}: collections nested more than 64 deep (YAML syntax)`], text.slice(0, 30));
    }
    // Brackets in quotes, comments and block scalars are text; nesting a configuration really uses is fine.
    const text = `# ${'['.repeat(100)}\nmode: demo\nnote: |\n  ${'['.repeat(100)}\nroutes: [{ path: '/x${'['.repeat(100)}', backend: "http://127.0.0.1:9/[[[[" }]\n`;
    assert.ok(!problemsOf(text).some((problem) => problem.includes('nested')), problemsOf(text).join('\n'));
  });

  it('reports duplicate keys as a YAML error', () => {
    const problems = problemsOf('mode: production\nmode: demo\n');
    assert.match(problems[0] ?? '', /^line 2, column 1: /);
  });

  it('rejects a file that is not a mapping', () => {
    assert.match(problemsOf('- a\n- b\n')[0] ?? '', /must hold a mapping of settings.*not a list/);
  });

  it('names a missing file', () => {
    assert.throws(
      () => loadConfig({ file: join(dir, 'nope.yaml'), env: {}, cwd: dir }),
      (error: unknown) => error instanceof ConfigError && /config file does not exist/.test(error.problems[0] ?? ''),
    );
  });

  it('reads only a regular UTF-8 file of sane size: a FIFO, /dev/zero, a huge or a Latin-1 file is one clear line', () => {
    // A FIFO blocked the event loop until someone wrote to it (a reload froze the gateway); /dev/zero grew memory.
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const huge = join(dir, 'huge.yaml');
    writeFileSync(huge, `# ${'x'.repeat(2 * 1024 * 1024)}\n${VALID}`);
    const latin1 = join(dir, 'latin1.yaml');
    writeFileSync(latin1, Buffer.concat([Buffer.from(VALID), Buffer.from('admin:\n  users: ["caf'), Buffer.from([0xe9]), Buffer.from('@corp.test"]\n')]));
    for (const [file, reason] of [
      [fifo, /config file is not a regular file/],
      ['/dev/zero', /config file is not a regular file/],
      [huge, /config file is larger than 1 MB/],
      [latin1, /config file is not UTF-8 text/],
    ] as const) {
      assert.throws(
        () => loadConfig({ file, env: {}, cwd: dir }),
        (error: unknown) => error instanceof ConfigError && reason.test(error.problems[0] ?? ''),
        file,
      );
    }
  });

  it('bounds durations where they are used: a timer at 2³¹−1 ms, a lifetime at ten years', () => {
    // upstream.timeoutMs 99999999999 passed the check, then every upstream call threw RangeError; a shutdown grace that
    // long became 1 ms.
    const timer = problemsOf(VALID.replace('server:', 'server:\n  shutdownGraceMs: 99999999999'));
    assert.ok(timer.some((p) => p.startsWith('server.shutdownGraceMs: must be at most 2147483647 (got 99999999999)')), timer.join('\n'));
    const lifetime = problemsOf(`${VALID}authorization:\n  accessTokenTtlSeconds: 1000000000000\n`);
    assert.ok(lifetime.some((p) => p.startsWith('authorization.accessTokenTtlSeconds: must be at most 315360000 ')), lifetime.join('\n'));
  });

  it('suggests the nearest key for an unknown key, at any depth', () => {
    const problems = problemsOf(`${VALID}servr:\n  port: 1\n`);
    assert.ok(problems.includes('servr: unknown key — did you mean "server"?'), problems.join('\n'));
    const nested = problemsOf(VALID.replace('    backend:', '    tool: {}\n    backend:'));
    assert.ok(nested.includes('routes[0].tool: unknown key — did you mean "tools"?'), nested.join('\n'));
  });

  it('lists the valid keys when nothing is close', () => {
    const problems = problemsOf(`${VALID}zzzzzzzz: 1\n`);
    assert.match(problems.join('\n'), /zzzzzzzz: unknown key — valid keys here: mode, server, /);
  });

  it('reports wrong types with the value given', () => {
    const problems = problemsOf(VALID.replace('server:', 'server:\n  port: abc'));
    assert.ok(problems.includes('server.port: expected a number, got "abc"'), problems.join('\n'));
    const list = problemsOf(VALID.replace('server:', 'server:\n  allowedOrigins: https://a.example'));
    assert.ok(list.includes('server.allowedOrigins: expected a list, got "https://a.example"'), list.join('\n'));
  });

  it('reports an invalid URL with the value and a wrong enum value with a suggestion', () => {
    const problems = problemsOf(VALID.replace('https://gatehouse.example.com', 'htp://x').replace('type: oidc', 'type: oicd'));
    assert.ok(problems.includes('server.publicUrl: must be an http(s) URL (got "htp://x")'), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('upstream.type: must be one of "entra", "oidc" (got "oicd") — did you mean "oidc"?')));
  });

  it('lists the keys of the chosen variant for an unknown key in upstream.clientAuth', () => {
    const problems = problemsOf(VALID.replace('method: federated', 'method: federated\n    tokn: x'));
    assert.ok(problems.includes('upstream.clientAuth.tokn: unknown key — valid keys here: method, tokenFile, managedIdentityClientId, audience, issuerUrl'), problems.join('\n'));
  });

  it('suggests the full value for an abbreviated one', () => {
    assert.ok(problemsOf(`${VALID}mode: prod\n`).includes('mode: must be one of "demo", "production" (got "prod") — did you mean "production"?'));
  });

  it('explains union types, record keys and list lengths', () => {
    const text = VALID.replace('server:', 'server:\n  trustProxy: "yes"\n  port: 80.5').replace(
      '    backend: http://127.0.0.1:3000/mcp',
      '    backend: http://127.0.0.1:3000/mcp\n    scopes: { "bad scope": x }',
    );
    const problems = problemsOf(`${text}broker:\n  downstream:\n    - { name: graph, audience: x, scopes: [] }\n`);
    assert.ok(problems.includes('server.trustProxy: expected true or false, a number or a list, got "yes"'), problems.join('\n'));
    assert.ok(problems.includes('server.port: expected a whole number, got 80.5'));
    assert.ok(problems.includes('routes[0].scopes: key "bad scope" — scope names are printable ASCII without spaces or quotes'));
    assert.ok(problems.includes('broker.downstream[0].scopes: must list at least 1 item (got a list)'));
  });

  it('says what a missing required field is for', () => {
    const problems = problemsOf(VALID.replace('  clientId: gatehouse\n', ''));
    assert.ok(problems.some((p) => p.startsWith('upstream.clientId: required — Application (client) id')), problems.join('\n'));
  });

  it('never echoes a secret in a type error', () => {
    const problems = problemsOf(VALID.replace('method: federated', 'method: client_secret_post\n    clientSecret: [s3cr3t-value]'));
    assert.ok(problems.some((p) => p.startsWith('upstream.clientAuth.clientSecret: expected a string')));
    assert.ok(problems.every((p) => !p.includes('s3cr3t-value')));
  });
});

describe('loadConfig: ${ENV} references', () => {
  const withSecret = VALID.replace('method: federated', 'method: client_secret_post\n    clientSecret: ${GH_TEST_SECRET}');

  it('replaces references from the environment', () => {
    const loaded = load(withSecret, { GH_TEST_SECRET: 'from-the-environment' });
    assert.equal(loaded.config.upstream?.clientAuth.method, 'client_secret_post');
    const clientAuth = loaded.config.upstream?.clientAuth;
    assert.equal(clientAuth && 'clientSecret' in clientAuth ? clientAuth.clientSecret : undefined, 'from-the-environment');
  });

  it('names a missing variable', () => {
    const problems = problemsOf(withSecret);
    assert.deepEqual(problems, ['upstream.clientAuth.clientSecret: environment variable GH_TEST_SECRET is not set — set it in the environment Gatehouse runs in']);
  });

  it("reports a missing variable together with the file's other problems, and not again as the schema sees it", () => {
    const text = withSecret.replace('https://gatehouse.example.com', '${GH_TEST_URL}').replace('server:', 'server:\n  port: 80.5');
    const problems = problemsOf(text);
    assert.deepEqual(
      [...problems].sort(),
      [
        'server.port: expected a whole number, got 80.5',
        'server.publicUrl: environment variable GH_TEST_URL is not set — set it in the environment Gatehouse runs in',
        'upstream.clientAuth.clientSecret: environment variable GH_TEST_SECRET is not set — set it in the environment Gatehouse runs in',
      ],
    );
  });

  it('keeps $${ as a literal ${ and expands several references in one value', () => {
    const loaded = load(VALID.replace('clientId: gatehouse', () => 'clientId: "$${literal}-${GH_A}-${GH_B}"'), { GH_A: 'a', GH_B: 'b' });
    assert.equal(loaded.config.upstream?.clientId, '${literal}-a-b');
  });

  it('converts a whole-value reference to a number where one is expected', () => {
    const loaded = load(VALID.replace('server:', 'server:\n  port: ${GH_PORT}'), { GH_PORT: '9123' });
    assert.equal(loaded.config.server.port, 9123);
  });

  it('does not echo a referenced value in errors', () => {
    const problems = problemsOf(VALID.replace('https://gatehouse.example.com', '${GH_URL}'), { GH_URL: 'not a url secret-ish' });
    assert.ok(problems.some((p) => p.startsWith('server.publicUrl: must be an http(s) URL')));
    assert.ok(problems.every((p) => !p.includes('secret-ish')));
  });

  it('reports an unclosed reference', () => {
    assert.match(problemsOf(VALID.replace('clientId: gatehouse', 'clientId: "${OOPS"'))[0] ?? '', /^upstream\.clientId: "\$\{" is not closed/);
  });
});

describe('loadConfig: GATEHOUSE_* overrides', () => {
  it('applies the documented variables over the file', () => {
    const loaded = load(VALID, {
      GATEHOUSE_PORT: '9090',
      GATEHOUSE_PUBLIC_URL: 'https://other.example.com',
      GATEHOUSE_STORE: 'redis',
      GATEHOUSE_REDIS_URL: 'rediss://:pw@redis.example.com:6380',
      GATEHOUSE_LOG_LEVEL: 'debug',
      GATEHOUSE_TRUST_PROXY: '10.0.0.0/8, 192.168.0.1',
    });
    assert.equal(loaded.config.server.port, 9090);
    assert.equal(loaded.publicUrl, 'https://other.example.com');
    assert.equal(loaded.config.store.type, 'redis');
    assert.equal(loaded.config.store.redisUrl, 'rediss://:pw@redis.example.com:6380');
    assert.equal(loaded.config.log.level, 'debug');
    assert.deepEqual(loaded.config.server.trustProxy, ['10.0.0.0/8', '192.168.0.1']);
  });

  it('names the variable when its value is wrong, and hides secret overrides', () => {
    const problems = problemsOf(VALID, { GATEHOUSE_PORT: 'abc' });
    assert.deepEqual(problems, ['server.port (from GATEHOUSE_PORT): expected a number, got "abc"']);
    const redis = problemsOf(VALID, { GATEHOUSE_STORE: 'redis', GATEHOUSE_REDIS_URL: 'http://user:pa55word@x' });
    assert.ok(redis.includes('store.redisUrl: must start with redis:// or rediss:// (TLS)'), redis.join('\n'));
    assert.ok(redis.every((p) => !p.includes('pa55word')));
    // A URL the store could not parse is the configuration's problem (exit 2 from config check), not a store outage.
    for (const url of ['redis://u:pa55word@127.0.0.1:99999', 'rediss://u:pa55word@[::1', 'redis://h:1:2', 'redis://:pa55word%zz@127.0.0.1:6379']) {
      const unparsable = problemsOf(VALID, { GATEHOUSE_STORE: 'redis', GATEHOUSE_REDIS_URL: url });
      assert.ok(unparsable.some((p) => p.startsWith('store.redisUrl: is not a valid URL')), unparsable.join('\n'));
      assert.ok(unparsable.every((p) => !p.includes('pa55word')));
    }
  });

  it("never echoes a URL's credentials, in whatever field a mistyped URL sits", () => {
    for (const [backend, shown] of [
      ['htp://user:pa55word@127.0.0.1:47112/api', 'htp://(credentials hidden)@127.0.0.1:47112/api'],
      ['user:pa55word@127.0.0.1/api', '(credentials hidden)@127.0.0.1/api'],
      ['//:pa55word@backend/api', '//(credentials hidden)@backend/api'],
      // A password with what ends userinfo in a URL (unencoded, which is why the URL is invalid), or a leading blank.
      ['https://admin:pa#55word@127.0.0.1:47112/api', 'https://(credentials hidden)@127.0.0.1:47112/api'],
      ['https://admin:pa/55word@127.0.0.1/api', 'https://(credentials hidden)@127.0.0.1/api'],
      ['https://admin:pa?55word@127.0.0.1/api', 'https://(credentials hidden)@127.0.0.1/api'],
      ['htp://admin:p@55word@127.0.0.1/api', 'htp://(credentials hidden)@127.0.0.1/api'],
      [' htp://admin:pa55word@127.0.0.1/api', ' htp://(credentials hidden)@127.0.0.1/api'],
      // A query value is a key as often as not (Azure Functions' ?code=): hidden as the routes page hides it.
      ['htps://fn.example.net/api/mcp?code=pa55word&x=1', 'htps://fn.example.net/api/mcp?code=…&x=…'],
    ]) {
      const problems = problemsOf(VALID.replace('http://127.0.0.1:3000/mcp', JSON.stringify(backend)));
      assert.ok(problems.some((p) => p.startsWith('routes[0].backend: ') && p.includes(JSON.stringify(shown))), problems.join('\n'));
      assert.ok(problems.every((p) => !p.includes('pa55word')), problems.join('\n'));
    }
    const issuer = problemsOf(VALID.replace('https://idp.example.com', 'ftp://admin:pa55word@idp.example.com'));
    assert.ok(issuer.length > 0 && issuer.every((p) => !p.includes('pa55word')), issuer.join('\n'));
    // A value without credentials is shown as it was given.
    assert.ok(problemsOf(VALID.replace('http://127.0.0.1:3000/mcp', 'htp://backend/a')).some((p) => p.includes('"htp://backend/a"')));
  });

  it('warns about an unknown GATEHOUSE_ variable with the nearest name', () => {
    const loaded = load(VALID, { GATEHOUSE_PROT: '1' });
    assert.deepEqual(loaded.warnings, ['GATEHOUSE_PROT: not a Gatehouse setting, ignored — did you mean GATEHOUSE_PORT?']);
  });

  it('ignores empty variables', () => {
    assert.equal(load(VALID, { GATEHOUSE_PORT: '' }).config.server.port, 8080);
  });

  it('lets command-line flags win over the environment', () => {
    const loaded = loadConfig({ file: writeConfig(VALID), env: { GATEHOUSE_PORT: '9090' }, cwd: dir, flags: { port: '9191' } });
    assert.equal(loaded.config.server.port, 9191);
  });
});

describe('loadConfig: production and cross-field rules', () => {
  it('requires https for the public URL, allowing http on localhost with a warning', () => {
    const problems = problemsOf(VALID.replace('https://gatehouse.example.com', 'http://gatehouse.example.com'));
    assert.ok(problems.includes('server.publicUrl: must be an https URL (got "http://gatehouse.example.com")'), problems.join('\n'));
    const local = load(`${VALID.replace('https://gatehouse.example.com', 'http://localhost:8080')}dev:\n  insecureCookies: true\n`);
    assert.ok(local.warnings.some((w) => w.startsWith('server.publicUrl: plain http on localhost')));
  });

  it('refuses an http public URL without dev.insecureCookies, in every mode (start could never set its cookies)', () => {
    const production = problemsOf(VALID.replace('https://gatehouse.example.com', 'http://localhost:8080'));
    assert.ok(production.some((p) => /^server\.publicUrl: .* is not https.*dev\.insecureCookies: true$/.test(p)), production.join('\n'));
    const demo = problemsOf('mode: demo\nserver:\n  publicUrl: http://gatehouse.example.com\n');
    assert.deepEqual(demo, ['dev.insecureCookies: "http://gatehouse.example.com" is not https and not localhost — session cookies would cross the network in the clear; use an https URL']);
  });

  it('requires an https issuer for oidc and a tenant for entra', () => {
    const problems = problemsOf(VALID.replace('https://idp.example.com', 'htp://x'));
    assert.ok(problems.includes('upstream.issuer: must be an https URL (got "htp://x")'), problems.join('\n'));
    const entra = problemsOf(VALID.replace('type: oidc', 'type: entra'));
    assert.ok(entra.some((p) => p.startsWith('upstream.entra.tenantId: required for type entra')), entra.join('\n'));
    const noIssuer = problemsOf(VALID.replace('  issuer: https://idp.example.com\n', ''));
    assert.ok(noIssuer.some((p) => p.startsWith('upstream.issuer: required for type oidc')));
  });

  it('refuses an issuer with a query or a fragment (subjects are <issuer>#<sub>: a "#" would let one IdP name another\'s users)', () => {
    const upstream = problemsOf(VALID.replace('https://idp.example.com', 'https://idp.example.com#x'));
    assert.ok(upstream.some((p) => p.startsWith('upstream.issuer: an issuer has no query or fragment')), upstream.join('\n'));
    const federated = problemsOf(
      `${VALID}authorization:\n  enterpriseIdps:\n    - issuer: "https://idp.example.com?tenant=x"\n      clients: [a]\n  workloadIdentities:\n    - issuer: "https://k8s.example.com#a"\n      rules: [{ subject: "*", clientId: a, scopes: [s] }]\n`,
    );
    assert.ok(federated.some((p) => p.startsWith('authorization.enterpriseIdps[0].issuer: an issuer has no query or fragment')), federated.join('\n'));
    assert.ok(federated.some((p) => p.startsWith('authorization.workloadIdentities[0].issuer: an issuer has no query or fragment')), federated.join('\n'));
  });

  it('requires store.redisUrl for the redis store', () => {
    assert.ok(problemsOf(`${VALID}store:\n  type: redis\n`).some((p) => p.startsWith('store.redisUrl: required with store.type redis')));
  });

  it('reports an unreadable or missing key file', () => {
    const keyFile = join(dir, 'keys.json');
    writeFileSync(keyFile, '{}');
    chmodSync(keyFile, 0o000);
    const missing = problemsOf(`${VALID}keys:\n  source: file\n  file: ./does-not-exist.json\n`);
    assert.ok(missing.some((p) => /^keys\.file: ".*does-not-exist\.json" does not exist/.test(p)), missing.join('\n'));
    const noFile = problemsOf(`${VALID}keys:\n  source: file\n`);
    assert.ok(noFile.some((p) => p.startsWith('keys.file: required with keys.source file')));
    // root can read anything; the permission case only means something for other users.
    if (process.getuid?.() !== 0) {
      const unreadable = problemsOf(`${VALID}keys:\n  source: file\n  file: ${keyFile}\n`);
      assert.ok(unreadable.some((p) => p.includes('is not readable')), unreadable.join('\n'));
    }
    const directory = problemsOf(`${VALID}keys:\n  source: file\n  file: .\n`);
    assert.ok(directory.some((p) => p.startsWith(`keys.file: "${dir}" is not a file`)), directory.join('\n'));
    chmodSync(keyFile, 0o600);
    assert.equal(load(`${VALID}keys:\n  source: file\n  file: ./keys.json\n`).config.keys.file, keyFile);
  });

  it('rejects duplicate route paths, reserved paths and unknown downstream names', () => {
    const text = `${VALID}  - path: /mcp/
    backend: http://127.0.0.1:3001/mcp
    downstream: [graf]
  - path: /token
    backend: http://127.0.0.1:3002/mcp
    identity: { mode: obo, downstream: graph }
broker:
  downstream:
    - name: graph
      audience: https://graph.microsoft.com
      scopes: [https://graph.microsoft.com/User.Read]
`;
    const problems = problemsOf(text);
    assert.ok(problems.some((p) => p.startsWith('routes[1].path: "/mcp/" is already used by routes[0]')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('routes[2].path: "/token" is reserved')));
    assert.ok(problems.includes('routes[1].downstream[0]: "graf" is not a broker.downstream name (broker.downstream has: graph)'));
  });

  describe('an http route whose backend also reaches an mcp route\'s backend', () => {
    const httpRoute = (backend: string, extra = '') => `${VALID}  - path: /rest\n    type: http\n    backend: ${backend}\n${extra}`;
    const overlap = (problems: readonly string[]) => problems.filter((p) => p.startsWith('routes[1].backend:'));

    it('is refused when its base path is the MCP backend\'s origin root, the MCP path itself, or holds the legacy SSE endpoint', () => {
      // Every spelling of this machine, and of the path in another case (a server may route without case).
      for (const backend of ['http://127.0.0.1:3000', 'http://127.0.0.1:3000/', 'http://127.0.0.1:3000/mcp', 'http://localhost:3000/', 'http://[::1]:3000/mcp/', 'http://[::ffff:127.0.0.1]:3000/', 'http://0.0.0.0:3000/', 'http://[::]:3000/', 'http://127.0.0.1:3000/MCP']) {
        const problems = overlap(problemsOf(httpRoute(backend)));
        assert.equal(problems.length, 1, backend);
        assert.match(problems[0] ?? '', /also reaches http:\/\/127\.0\.0\.1:3000\/(mcp|sse), the MCP backend of routes\[0\] \(\/mcp\).*set routes\[1\]\.allowMcpBackendOverlap: true$/);
      }
      const legacy = VALID.replace('backend: http://127.0.0.1:3000/mcp', 'backend: http://127.0.0.1:3000/mcp\n    legacySsePath: /legacy/sse');
      const problems = problemsOf(`${legacy}  - path: /rest\n    type: http\n    backend: http://127.0.0.1:3000/legacy\n`);
      assert.ok(problems.some((p) => p.startsWith('routes[1].backend: "http://127.0.0.1:3000/legacy" also reaches http://127.0.0.1:3000/legacy/sse')), problems.join('\n'));
      // Both URLs without their credentials: the problem is printed and logged.
      const withCredentials = VALID.replace('backend: http://127.0.0.1:3000/mcp', 'backend: http://mcp:pa55word@127.0.0.1:3000/mcp');
      const shown = overlap(problemsOf(`${withCredentials}  - path: /rest\n    type: http\n    backend: http://rest:pa55word@127.0.0.1:3000/\n`));
      assert.equal(shown.length, 1);
      assert.ok(shown[0]?.startsWith('routes[1].backend: "http://127.0.0.1:3000/" also reaches http://127.0.0.1:3000/mcp,') && !shown[0].includes('pa55word'), shown[0]);
    });

    it('is accepted when it covers no MCP endpoint: another base path, port or host', () => {
      for (const backend of ['http://127.0.0.1:3000/api', 'http://127.0.0.1:3000/mc', 'http://127.0.0.1:3000/mcpx', 'http://127.0.0.1:3001/', 'http://10.0.0.5:3000/', 'http://127.0.0.2:3000/']) {
        const loaded = load(httpRoute(backend));
        assert.deepEqual(loaded.warnings, [], backend);
      }
    });

    it('is accepted with a warning when the route opts in with allowMcpBackendOverlap, which mcp routes cannot set', () => {
      const loaded = load(httpRoute('http://127.0.0.1:3000/', '    allowMcpBackendOverlap: true\n'));
      assert.equal(loaded.config.routes[1]?.allowMcpBackendOverlap, true);
      assert.equal(loaded.warnings.length, 1);
      assert.match(loaded.warnings[0] ?? '', /^routes\[1\]\.backend: .* callable through \/rest without that route's scopes, tool policies or tools\/list filter \(allowMcpBackendOverlap is set\)$/);
      const onMcp = problemsOf(VALID.replace('    backend: http://127.0.0.1:3000/mcp', '    backend: http://127.0.0.1:3000/mcp\n    allowMcpBackendOverlap: true'));
      assert.ok(onMcp.includes('routes[0].allowMcpBackendOverlap: only for type: http routes — remove it'), onMcp.join('\n'));
    });
  });

  it('refuses dev.insecureCookies on a public https URL', () => {
    assert.ok(problemsOf(`${VALID}dev:\n  insecureCookies: true\n`).some((p) => p.startsWith('dev.insecureCookies: development only')));
  });
});

describe('loadConfig: a mode: demo file', () => {
  it('states only what it changes; the demo defaults fill the rest and follow its ports', () => {
    const loaded = load('mode: demo\nserver:\n  port: 9000\ndemo:\n  graphServerPort: 9999\n');
    assert.equal(loaded.publicUrl, 'http://localhost:9000');
    assert.equal(loaded.config.routes[0]?.backend, 'http://127.0.0.1:9999/mcp');
    assert.equal(loaded.config.upstream?.issuer, 'http://localhost:8081');
  });

  it('replaces the local identity provider as a whole when it names another', () => {
    const loaded = load('mode: demo\nupstream:\n  type: entra\n  entra: { tenantId: t }\n  clientId: c\n  clientAuth: { method: private_key_jwt, privateKeyFile: ./k.pem }\n');
    assert.equal(loaded.config.upstream?.type, 'entra');
    assert.equal(loaded.config.upstream?.issuer, undefined);
    const clientAuth = loaded.config.upstream?.clientAuth;
    assert.equal(clientAuth?.method === 'private_key_jwt' ? clientAuth.privateKeyFile : undefined, join(dir, 'k.pem'));
  });
});

describe('Entra tenants allowed to sign in', () => {
  const entra = (block: string) => VALID.replace('  type: oidc\n  issuer: https://idp.example.com\n', `  type: entra\n  entra:\n${block}`);
  const entraProblems = (problems: readonly string[]) => problems.filter((problem) => problem.startsWith('upstream.entra'));

  it('requires the list with a multi-tenant authority: empty admitted every tenant, the reverse of how it reads', () => {
    for (const tenant of ['organizations', 'common']) {
      assert.deepEqual(entraProblems(problemsOf(entra(`    tenantId: ${tenant}\n`))), [
        `upstream.entra.allowedTenants: required with tenantId: ${tenant} — the tenant ids whose users may sign in, or ['*'] for users of every Entra tenant`,
      ]);
    }
  });

  it("takes tenant ids, or '*' alone; a domain name (never in a token's tid) is refused", () => {
    const guid = '11111111-2222-3333-4444-555555555555';
    assert.deepEqual(load(entra(`    tenantId: organizations\n    allowedTenants: [${guid}]\n`)).warnings, []);
    assert.deepEqual(load(entra("    tenantId: organizations\n    allowedTenants: ['*']\n")).warnings, []);
    assert.deepEqual(entraProblems(problemsOf(entra(`    tenantId: organizations\n    allowedTenants: [contoso.com, '*', ${guid}]\n`))), [
      `upstream.entra.allowedTenants[0]: "contoso.com" — a tenant id (GUID), or '*' alone`,
      `upstream.entra.allowedTenants[1]: "*" — a tenant id (GUID), or '*' alone`,
    ]);
  });

  it('warns that the list means nothing with a single tenant', () => {
    const guid = '11111111-2222-3333-4444-555555555555';
    const loaded = load(entra(`    tenantId: ${guid}\n    allowedTenants: [${guid}]\n`));
    assert.ok(loaded.warnings.some((warning) => warning.startsWith('upstream.entra.allowedTenants: ignored with a single tenant')), loaded.warnings.join('\n'));
  });
});

