import { after } from 'node:test';

/**
 * Loaded before every test file (`--import`, see scripts/run-tests.ts): once all of a file's tests are done, a file
 * still kept alive by a leaked handle (an open socket, a timer) exits after a short grace, so no leak can hold up the
 * run. Node's own `--test-force-exit` does the same but exits before the file's results have reached the runner: on
 * this machine it dropped between a tenth and half of a file's test reports, failures included. The grace lets them
 * arrive; the exit code the runner set (1 after a failure) is kept.
 */
const GRACE_MS = 3_000;

after(() => {
  setTimeout(() => process.exit(), GRACE_MS).unref();
});
