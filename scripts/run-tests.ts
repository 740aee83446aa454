import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';

/**
 * `npm test`: every test file under test/ with Node's built-in runner, on the Node that runs this script (the
 * pinned Node 24, never the system one), each file in its own process.
 *
 *   npm test                                  all of test/**\/*.test.ts
 *   npm test -- test/store                    only those files or folders (globs work too)
 *   npm test -- --test-name-pattern=redis     extra flags go to `node --test`
 *
 * Time limits: `--test-timeout` bounds every test, and test/support/end-file-when-done.ts (loaded before each file)
 * ends a file's process a few seconds after its tests are done, so neither a hung test nor a leaked handle (an open
 * socket, a timer) can hold up the suite; together they bound the time of each file. Not `--test-force-exit`: it
 * exits before a file's results reach the runner, and silently dropped part of them. A whole-run limit
 * (GATEHOUSE_TEST_RUN_TIMEOUT_MS) stops a run stuck anywhere else.
 */

const projectRoot = resolve(import.meta.dirname, '..');
const artifactsDir = resolve(projectRoot, 'test-artifacts');
const perTestTimeoutMs = Number(process.env.GATEHOUSE_TEST_TIMEOUT_MS ?? 120_000);
const runTimeoutMs = Number(process.env.GATEHOUSE_TEST_RUN_TIMEOUT_MS ?? 30 * 60_000);
// One file per core: the suites start real servers, Redis and a browser, and more parallelism only adds contention.
const concurrency = Math.max(1, availableParallelism());

const args = process.argv.slice(2);
const passedFlags = args.filter((arg) => arg.startsWith('-'));
const passedPaths = args.filter((arg) => !arg.startsWith('-'));
const targets = (passedPaths.length > 0 ? passedPaths : ['test/**/*.test.ts']).map((target) =>
  target.endsWith('.ts') || target.includes('*') ? target : `${target.replace(/\/$/, '')}/**/*.test.ts`,
);

await mkdir(artifactsDir, { recursive: true });

const runnerArgs = [
  '--test',
  `--test-concurrency=${concurrency}`,
  `--test-timeout=${perTestTimeoutMs}`,
  `--import=${resolve(projectRoot, 'test', 'support', 'end-file-when-done.ts')}`,
  '--test-reporter=spec',
  ...passedFlags,
  ...targets,
];
process.stdout.write(`node ${runnerArgs.join(' ')}\n`);

const runner = spawn(process.execPath, runnerArgs, {
  cwd: projectRoot,
  stdio: 'inherit',
  env: { ...process.env, GATEHOUSE_TEST_ARTIFACTS: artifactsDir },
});

const watchdog = setTimeout(() => {
  process.stderr.write(`\nrun-tests: the run exceeded ${runTimeoutMs} ms; stopping it\n`);
  runner.kill('SIGTERM');
}, runTimeoutMs);
watchdog.unref();

// Ctrl-C reaches the runner too (same process group); stop it explicitly when we are told to stop another way.
for (const signal of ['SIGTERM', 'SIGHUP'] as const) process.on(signal, () => runner.kill(signal));

runner.on('exit', (code, signal) => {
  clearTimeout(watchdog);
  process.exitCode = code ?? (signal ? 1 : 0);
});
