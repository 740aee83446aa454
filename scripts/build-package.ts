import { spawnSync } from 'node:child_process';
import { cpSync, rmSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';

/**
 * `npm run build` (and `prepack`, so `npm pack` / `npm publish` always ship fresh output): compiles src/ (and the
 * sample server the demo imports) to JavaScript in dist/.
 *
 * Why a build at all when a clone runs the TypeScript sources directly: Node refuses to strip types from files
 * under node_modules (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING), which is exactly where an installed package
 * lives. The sources use erasable syntax only, so the emitted JavaScript is the sources with the types removed and
 * `.ts` import specifiers rewritten to `.js` (rewriteRelativeImportExtensions); nothing else changes at run time.
 */
const root = resolve(import.meta.dirname, '..');
// `--out-dir <dir>`: somewhere other than dist/ (the bench builds into its own temp dir, leaving dist/ alone).
const outFlag = process.argv.indexOf('--out-dir');
const dist = outFlag > 0 && process.argv[outFlag + 1] ? resolve(process.argv[outFlag + 1]!) : resolve(root, 'dist');
const tsc = resolve(root, 'node_modules', 'typescript', 'bin', 'tsc');

rmSync(dist, { recursive: true, force: true });
const compiled = spawnSync(process.execPath, [tsc, '-p', resolve(root, 'tsconfig.build.json'), '--outDir', dist], { cwd: root, stdio: 'inherit' });
if (compiled.status !== 0) {
  process.stderr.write('build-package: tsc failed\n');
  process.exit(compiled.status ?? 1);
}

// Files the code reads beside itself at run time (stylesheets); docs and sources stay out of the package.
const runtimeAsset = (path: string): boolean => !['.ts', '.md'].includes(extname(path));
for (const folder of ['src', 'examples/graph-server']) {
  cpSync(resolve(root, folder), resolve(dist, folder), {
    recursive: true,
    filter: (source) => statSync(source).isDirectory() || runtimeAsset(source),
  });
}
process.stdout.write(`build-package: wrote ${dist}\n`);
