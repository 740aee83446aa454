import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { join, resolve } from 'node:path';

/**
 * The Node targets run as JavaScript, as they run in production: Gatehouse from its package build (what the
 * container image and an installed package start), the Express peer and the Node floor with their types stripped.
 * Running TypeScript sources makes Node load its type stripper, which stays in memory (≈ 28 MB of RSS per process
 * here) and which no deployment carries: it would inflate every Node target's idle RSS, Gatehouse's and the
 * anchors' alike.
 *
 * Everything is written under the bench's temp dir, beside a `node_modules` link to the repository's (so packages
 * resolve) and a copy of its package.json (the module type, and the version Gatehouse reports).
 */
export interface CompiledTargets {
  /** The `NODE_OPTIONS` the container image starts Gatehouse with, so the bench uses the same. */
  gatehouseNodeOptions: string;
  /** Gatehouse's CLI entry as the package build emits it. */
  gatehouseEntry: string;
  /** A bench server (`bench/targets/<name>.ts`) as JavaScript. */
  script(name: 'node-floor-server' | 'express-peer-server' | 'fastify-floor-server' | 'oidc-provider-floor-server'): string;
}

const root = resolve(import.meta.dirname, '..', '..');

export function compileTargets(dir: string): CompiledTargets {
  const out = join(dir, 'js');
  mkdirSync(join(out, 'bench'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'), 'dir');
  copyFileSync(join(root, 'package.json'), join(out, 'package.json'));
  const dist = join(out, 'dist');
  const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-package.ts'), '--out-dir', dist], { encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`the package build failed:\n${build.stdout}${build.stderr}`);
  const scripts = new Map<string, string>();
  for (const name of ['node-floor-server', 'express-peer-server', 'fastify-floor-server', 'oidc-provider-floor-server']) {
    const source = join(import.meta.dirname, `${name}.ts`);
    const target = join(out, 'bench', `${name}.js`);
    // The servers import nothing relative but types, which stripping erases.
    writeFileSync(target, stripTypeScriptTypes(readFileSync(source, 'utf8'), { mode: 'strip' }));
    scripts.set(name, target);
  }
  return {
    gatehouseNodeOptions: imageNodeOptions(),
    gatehouseEntry: join(dist, 'src', 'cli', 'main.js'),
    script: (name) => scripts.get(name)!,
  };
}

/** The image's `NODE_OPTIONS` (its `ENV NODE_OPTIONS=…` line), which Gatehouse in the container starts with. */
export function imageNodeOptions(): string {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const line = /^ENV NODE_OPTIONS=(.+)$/m.exec(dockerfile);
  if (!line) throw new Error('the Dockerfile sets no NODE_OPTIONS');
  return line[1]!.trim();
}
