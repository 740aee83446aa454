import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { startGateway } from '../../src/app/start-gateway.ts';
import { chooseLogFormat, formatPrettyLine, prettyDestination } from '../../src/server/log-destination.ts';
import { createLogger } from '../../src/server/logger.ts';
import type { SignalSource } from '../../src/server/graceful-shutdown.ts';

describe('log destination', () => {
  it('is JSON for machines and pretty for people, unless log.format says otherwise', () => {
    const cases = [
      { format: 'auto', mode: 'production', stdoutIsTTY: false, expected: 'json' },
      { format: 'auto', mode: 'production', stdoutIsTTY: true, expected: 'pretty' },
      { format: 'auto', mode: 'demo', stdoutIsTTY: false, expected: 'pretty' },
      { format: 'json', mode: 'demo', stdoutIsTTY: true, expected: 'json' },
      { format: 'pretty', mode: 'production', stdoutIsTTY: false, expected: 'pretty' },
    ] as const;
    for (const { expected, ...input } of cases) assert.equal(chooseLogFormat(input), expected, JSON.stringify(input));
  });

  it('shows a request as one line: method, path, status and time', () => {
    const record = { level: 30, time: Date.UTC(2026, 0, 1, 9, 8, 7), pid: 1, hostname: 'h', reqId: 'r1', req: { method: 'POST', url: '/mcp' }, res: { statusCode: 403 }, responseTime: 12.4, msg: 'request completed' };
    assert.equal(formatPrettyLine(JSON.stringify(record), false), '09:08:07 INFO  POST /mcp → 403 (12 ms)\n');
    const coloured = formatPrettyLine(JSON.stringify(record), true);
    assert.ok(coloured.includes('\u001b[33m403\u001b[39m'), 'a 4xx status in yellow');
    const plain = formatPrettyLine(JSON.stringify({ level: 40, time: 0, msg: 'grant ended', grantId: 'g1', reason: 'user revoked' }), false);
    assert.equal(plain, '00:00:00 WARN  grant ended grantId=g1 reason="user revoked"\n');
  });

  it('shows what a terminal would obey as escapes: a request cannot move the cursor, erase lines or retitle the window', () => {
    const payload = '\u001b[1A\u001b[2K\u001b[32mINFO all good\u001b[0m\u001b]0;pwned\u0007\u009b2J\u202e';
    const record = { level: 40, time: 0, msg: `sign-in failed ${payload}`, upstreamError: payload, plain: `x${payload}`, req: { method: 'GET', url: `/callback?error=${payload}` }, err: { type: 'Error', message: payload, stack: `Error\n    at ${payload}` } };
    for (const colors of [false, true]) {
      const line = formatPrettyLine(JSON.stringify(record), colors);
      // oxlint-disable-next-line no-control-regex -- the colour codes the line is allowed
      const withoutColours = line.replace(/\u001b\[\d+m/g, '');
      // oxlint-disable-next-line no-control-regex -- what must not be left in it
      assert.doesNotMatch(withoutColours, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/, JSON.stringify(line));
      assert.ok(withoutColours.includes('\\u001b]0;pwned\\u0007'), 'shown, not obeyed');
      assert.equal(withoutColours.split('\n').length, 3, 'one line, then the stack line');
    }
  });

  it('writes one line per request and keeps redaction (secrets are blanked before formatting)', () => {
    const written: string[] = [];
    const logger = createLogger({ level: 'info', destination: prettyDestination({ colors: false, target: { write: (text: string) => written.push(text) } }) });
    logger.info({ req: { method: 'GET', url: '/x' } }, 'incoming request');
    logger.info({ req: { method: 'GET', url: '/callback?code=s3cret-code' }, res: { statusCode: 302 }, responseTime: 3 }, 'request completed');
    logger.info({ access_token: 'eyJ-secret-token' }, 'token issued');
    assert.equal(written.length, 2, written.join(''));
    assert.ok(!written.join('').includes('s3cret-code') && !written.join('').includes('eyJ-secret-token'), written.join(''));
    assert.match(written[0] ?? '', /GET \/callback\?code=\[REDACTED\] → 302/);
  });

  it('prints the start-up banner in one write, after the start-up logs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-banner-'));
    const file = join(dir, 'gatehouse.yaml');
    await writeFile(
      file,
      stringify({
        server: { publicUrl: 'https://gw.example.com', host: '127.0.0.1', port: 0 },
        store: { sqlitePath: join(dir, 'gatehouse.db') },
        upstream: { issuer: 'https://idp.example.com', clientId: 'gw', clientAuth: { method: 'client_secret_post', clientSecret: 'x' } },
        routes: [{ path: '/mcp', backend: 'http://svc:hunter2@127.0.0.1:9/mcp?code=fn-key-0123' }],
        log: { format: 'json' },
      }),
    );
    const stdout: string[] = [];
    const noSignals: SignalSource = { on: () => undefined, off: () => undefined };
    const running = await startGateway({ file, io: { stdout: (text) => void stdout.push(text), stderr: () => {}, env: {}, cwd: dir }, logLevel: 'silent', signals: noSignals });
    try {
      assert.equal(stdout.length, 1, `one write, not ${stdout.length}`);
      assert.match(stdout[0] ?? '', /^Gatehouse \(production\) listening on .*\n {2}health: .*\n {2}MCP route: https:\/\/gw\.example\.com\/mcp → .*\n$/);
      assert.match(stdout[0] ?? '', /→ http:\/\/127\.0\.0\.1:9\/mcp\?code=…\n/, 'the backend without its credentials');
    } finally {
      running.lifecycle.dispose();
      await running.lifecycle.shutdown('test finished');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
