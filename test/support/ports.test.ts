import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freePort } from './ports.ts';

describe('freePort', () => {
  it('never hands one port out twice in a process, even before any of them listens', async () => {
    // 400 draws from its ~12,000 ports repeat one with a probability above 99.8% when draws are independent.
    const ports: number[] = [];
    for (let index = 0; index < 400; index++) ports.push(await freePort());
    assert.equal(new Set(ports).size, ports.length);
    assert.ok(ports.every((port) => Number.isInteger(port) && port > 1023 && port < 65_536));
  });
});
