import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fastify, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createLogger, logRequestCompleted } from '../../src/server/logger.ts';

/**
 * The request line written directly (`logRequestCompleted`) must be the line pino writes for
 * `log.info({ req, res, responseTime }, 'request completed')`, byte for byte apart from the clock: operators parse it,
 * and the redaction pino would run must have had nothing to do. Each request below is logged both ways, with the same
 * response time, from the same child logger Fastify gives the request.
 */
describe('the request line written directly', () => {
  const lines: string[] = [];
  const destination = { write: (line: string) => lines.push(line) };
  let app: FastifyInstance;

  before(async () => {
    app = fastify({ loggerInstance: createLogger({ destination }) as FastifyBaseLogger, trustProxy: true, disableRequestLogging: true });
    app.all('/*', async (_request, reply) => reply.code(Number(_request.headers['x-status'] ?? 200)).send('ok'));
    app.addHook('onResponse', async (request, reply) => {
      lines.length = 0;
      logRequestCompleted(request.log as Logger, request, reply, 12.345);
      request.log.info({ req: request, res: reply, responseTime: 12.345 }, 'request completed');
    });
    await app.ready();
  });
  after(() => app.close());

  const withoutClock = (line: string | undefined) => (line ?? '').replace(/"time":\d+/, '"time":0');

  const cases: Array<{ name: string; url: string; method?: 'GET' | 'POST' | 'DELETE'; headers?: Record<string, string>; remoteAddress?: string }> = [
    { name: 'a plain POST with a bearer token and a cookie', url: '/mcp', method: 'POST', headers: { authorization: 'Bearer SECRET-token', cookie: 'a=SECRET' } },
    { name: 'a query with secrets to scrub', url: '/callback?code=SECRET-code&state=SECRET-state&keep=1' },
    { name: 'characters JSON must escape', url: '/p/%22quoted%22?q=%5C%22&x="\\' },
    { name: 'non-ASCII characters and a forwarded host', url: '/é/日本?name=ü', headers: { 'x-forwarded-host': 'gate.example', 'x-forwarded-for': '203.0.113.9' } },
    { name: 'an error status and an IPv6 client', url: '/missing', method: 'DELETE', headers: { 'x-status': '404' }, remoteAddress: '::1' },
  ];
  for (const testCase of cases) {
    it(`matches pino's line for ${testCase.name}`, async () => {
      await app.inject({ method: testCase.method ?? 'GET', url: testCase.url, headers: testCase.headers, remoteAddress: testCase.remoteAddress });
      assert.equal(lines.length, 2);
      assert.equal(withoutClock(lines[0]), withoutClock(lines[1]));
      assert.ok(!lines[0]!.includes('SECRET'), lines[0]);
      const parsed = JSON.parse(lines[0]!) as { msg: string; req: { url: string }; res: { statusCode: number }; responseTime: number };
      assert.equal(parsed.msg, 'request completed');
      assert.equal(parsed.responseTime, 12.345);
    });
  }

  it("writes the line itself, not through pino's call, for createLogger's logger and a child of it", () => {
    const written: string[] = [];
    const child = createLogger({ destination: { write: (line: string) => written.push(line) } }).child({ reqId: 'req-1' });
    child.info = () => assert.fail("pino's generic path was taken");
    logRequestCompleted(child, { method: 'POST', url: '/mcp' }, { statusCode: 200 }, 2);
    assert.equal(written.length, 1);
    assert.match(written[0]!, /^\{"level":30,"time":\d+,"pid":\d+,"hostname":"[^"]*","reqId":"req-1","req":\{"method":"POST","url":"\/mcp"\},"res":\{"statusCode":200\},"responseTime":2,"msg":"request completed"\}\n$/);
  });

  it('defers to pino when a child adds its own redaction or serializer', () => {
    const written: string[] = [];
    const base = createLogger({ destination: { write: (line: string) => written.push(line) } });
    const redacting = base.child({}, { redact: ['responseTime'] });
    logRequestCompleted(redacting, { method: 'GET', url: '/' }, { statusCode: 200 }, 3);
    assert.match(written.at(-1)!, /"responseTime":"\[Redacted\]"/);
    const serializing = base.child({}, { serializers: { responseTime: (ms: number) => `${ms} ms` } });
    logRequestCompleted(serializing, { method: 'GET', url: '/' }, { statusCode: 200 }, 3);
    assert.match(written.at(-1)!, /"responseTime":"3 ms"/);
  });

  it('writes nothing when the level leaves info out, and defers to pino for a logger it does not know', async () => {
    const quiet: string[] = [];
    const warnOnly = createLogger({ level: 'warn', destination: { write: (line: string) => quiet.push(line) } });
    logRequestCompleted(warnOnly, { method: 'GET', url: '/' }, { statusCode: 200 }, 1);
    assert.deepEqual(quiet, []);

    // A logger with a mixin (not one createLogger makes): pino's own call, so the mixin's field is there.
    const mixed: string[] = [];
    const { pino } = await import('pino');
    const other = pino({ mixin: () => ({ extra: 'from-mixin' }) }, { write: (line: string) => mixed.push(line) });
    logRequestCompleted(other, { method: 'GET', url: '/' }, { statusCode: 200 }, 1);
    assert.equal(mixed.length, 1);
    assert.match(mixed[0]!, /"extra":"from-mixin"/);
    assert.match(mixed[0]!, /"msg":"request completed"/);
  });
});
