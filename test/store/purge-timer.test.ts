import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startPurgeTimer } from '../../src/store/purge-timer.ts';
import { StoreUnavailableError } from '../../src/store/store.ts';
import { captureLogs } from '../support/server-context.ts';

/**
 * A background task's store failure is logged as what it is: an outage, the expected event, in one line every round
 * (it was a full stack trace every few seconds per replica for as long as Redis was away); anything else with its
 * stack, as a bug.
 */
describe('the purge timer in an outage', () => {
  const round = async (error: Error) => {
    const { logger, logs } = captureLogs();
    let rounds = 0;
    const timer = startPurgeTimer(
      {
        purgeExpired: async () => {
          rounds += 1;
          throw error;
        },
      },
      10,
      logger,
    );
    while (rounds === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setImmediate(resolve));
    timer.stop();
    return logs.lines().find((line) => line.msg === 'store purge failed');
  };

  it('logs an outage as its reason, without a stack', async () => {
    const line = await round(new StoreUnavailableError('Redis at 127.0.0.1:6379 is unavailable: Command timed out'));
    assert.equal(line?.reason, 'Redis at 127.0.0.1:6379 is unavailable: Command timed out');
    assert.equal(line?.err, undefined);
  });

  it('logs anything else with its stack', async () => {
    const line = await round(new TypeError('a bug'));
    assert.match(String((line?.err as { stack?: string } | undefined)?.stack), /TypeError: a bug/);
  });
});
