#!/usr/bin/env node
// The `gatehouse` command. Plain JavaScript so that any Node >= 18 can start it: Gatehouse itself needs Node 24
// (node:sqlite, and type stripping in a clone), so on an older Node this re-runs the same command with the Node 24
// that the package pins (the registry's `node` package, an optional dependency), forwarding signals and the exit code.
//
// A clone runs the TypeScript sources directly; the published package ships them compiled to dist/ (see
// scripts/build-package.ts), because Node does not strip types from files under node_modules.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REQUIRED_MAJOR = 24;
const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = join(here, '..');
const major = Number(process.versions.node.split('.')[0]);

if (major >= REQUIRED_MAJOR) {
  // SIGHUP (a reload) would end `gatehouse start` while its modules load: taken here, and handed to the gateway
  // (src/runtime/starting-hangup.ts), which reads the configuration file again once it listens.
  if (process.argv[2] === 'start') {
    const note = { received: false, listener: () => (note.received = true) };
    process.on('SIGHUP', note.listener);
    globalThis[Symbol.for('gatehouse.startingHangup')] = note;
  }
  const { main } = await import(pathToFileURL(cliEntry()).href);
  await main(process.argv.slice(2));
} else {
  reexecWithPinnedNode();
}

function reexecWithPinnedNode() {
  const pinned = findPinnedNode();
  // The marker stops an endless loop if the pinned Node turns out to be old as well.
  if (!pinned || process.env.__GATEHOUSE_REEXEC === '1') {
    process.stderr.write(
      `gatehouse: needs Node.js ${REQUIRED_MAJOR} or newer (this is ${process.version}) and the pinned Node was not found — install Node.js ${REQUIRED_MAJOR}, or reinstall gatehouse without --omit=optional\n`,
    );
    process.exit(2);
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, __GATEHOUSE_REEXEC: '1' },
  });
  // Forward termination requests so `gatehouse start` shuts down gracefully under a process manager.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (child.exitCode === null) child.kill(signal);
    });
  }
  child.on('error', (error) => {
    process.stderr.write(`gatehouse: cannot run ${pinned}: ${error.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      // Die the same way the child did, so callers see the signal, not a made-up code.
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
}

function cliEntry() {
  const source = join(packageRoot, 'src', 'cli', 'main.ts');
  const installed = packageRoot.split(sep).includes('node_modules');
  return existsSync(source) && !installed ? source : join(packageRoot, 'dist', 'src', 'cli', 'main.js');
}

function findPinnedNode() {
  const executable = process.platform === 'win32' ? 'node.exe' : 'node';
  const candidates = [join(packageRoot, 'node_modules', 'node', 'bin', executable), join(packageRoot, 'node_modules', '.bin', executable)];
  // Installed as a dependency (npx, a project's node_modules), npm hoists `node` beside gatehouse, not inside it.
  try {
    const nodePackage = createRequire(import.meta.url).resolve('node/package.json');
    candidates.push(join(dirname(nodePackage), 'bin', executable));
  } catch {
    // not installed (e.g. --omit=optional): the message below says what to do
  }
  return candidates.find((candidate) => existsSync(candidate));
}
