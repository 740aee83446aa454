import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The version of the installed Gatehouse, from its package.json. Found by walking up from this module, as Node finds
 * the package scope, because the module sits at a different depth in a clone (src/cli/) and in the published
 * package (dist/src/cli/).
 */
export function gatehouseVersion(from: string = import.meta.url): string {
  for (let dir = dirname(fileURLToPath(from)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const parsed: unknown = JSON.parse(readFileSync(candidate, 'utf8'));
      const version = (parsed as { version?: unknown } | null)?.version;
      if (typeof version !== 'string') throw new Error(`${candidate} has no version`);
      return version;
    }
    if (dirname(dir) === dir) throw new Error('package.json of gatehouse not found');
  }
}
