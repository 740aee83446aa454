import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';

/**
 * The container image, built from the Dockerfile with podman on base images made from Debian's packages, then
 * checked and run from its read-only root as user 65532 (scripts/verify-image.sh says how and why). Needs root,
 * podman, debootstrap and strip (`.ci/run` installs them); elsewhere it skips and says what is missing.
 */
const script = resolve(import.meta.dirname, '..', '..', 'scripts', 'verify-image.sh');
const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const missing = ['podman', 'debootstrap', 'strip', 'unshare', 'curl'].filter((tool) => !has(tool));
const skip = process.getuid?.() !== 0 ? 'needs root (podman builds rootful, the run uses chroot)' : missing.length > 0 ? `not installed: ${missing.join(', ')}` : false;

describe('container image', { skip }, () => {
  it('builds from the Dockerfile, holds no dev dependency or shell, has an SBOM, and serves the demo as 65532', { timeout: 20 * 60_000 }, async () => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.once('close', done));
    assert.equal(code, 0, output.slice(-4000));
    assert.match(output, /user 65532:65532/);
    assert.match(output, /SBOM: \d+ components/);
    // Run with the image's environment: the Node options the bench measured (docs/performance.md).
    assert.match(output, /environment: .*NODE_OPTIONS=--max-semi-space-size=16/);
    assert.match(output, /demo from the image: \/readyz 200/);
    assert.match(output, /SIGTERM: drained and exited 0/);
  });
});
