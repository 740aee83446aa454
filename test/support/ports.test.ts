import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';

describe('freePort', () => {
  it('never hands one port out twice in a process, even before any of them listens', async () => {
    // 400 draws from its 1,000 ports (~12,000 outside the test runner) would repeat one when draws were independent.
    const ports: number[] = [];
    for (let index = 0; index < 400; index++) ports.push(await freePort());
    assert.equal(new Set(ports).size, ports.length);
    assert.ok(ports.every((port) => Number.isInteger(port) && port > 1023 && port < 65_536));
  });

  it('hands test files running side by side ports from ranges apart', async () => {
    // Two processes drawing 300 ports each from the same ~12,000 share one with a probability above 99.9%.
    const drawIn = async (workerId: string): Promise<number[]> => {
      const script = `import { freePort } from ${JSON.stringify(import.meta.resolve('./ports.ts'))};
        const ports = []; for (let i = 0; i < 300; i++) ports.push(await freePort()); console.log(JSON.stringify(ports));`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '--eval', script], { env: { ...process.env, NODE_TEST_WORKER_ID: workerId } });
      return JSON.parse(stdout) as number[];
    };
    const [first, second] = await Promise.all([drawIn('1'), drawIn('2')]);
    const shared = first.filter((port) => second.includes(port));
    assert.deepEqual(shared, []);
  });
});
