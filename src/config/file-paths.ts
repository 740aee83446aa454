import { isAbsolute, resolve } from 'node:path';
import { isRecord } from './schema-introspection.ts';
import { OPERATOR_FILE_LIMIT_BYTES } from './operator-file.ts';

/**
 * Settings that name files. A relative path written in the config file is relative to that file (so
 * `keys.file: ./gatehouse.keys.json` next to `gatehouse.yaml` works from any working directory); one from the
 * environment or a default is relative to the working directory. After loading, every one is absolute, so the parts
 * that open these files never depend on where the process was started.
 */
export const FILE_PATH_SETTINGS: readonly string[] = [
  'keys.file',
  'store.sqlitePath',
  'upstream.clientAuth.tokenFile',
  'upstream.clientAuth.privateKeyFile',
  'upstream.clientAuth.certificateFile',
  'authorization.clientMetadataDocuments.trustedCaFile',
  'audit.output',
  'demo.usersFile',
];

/** Values that look like paths but are not files. */
const NOT_A_PATH = new Set([':memory:', 'store', 'stdout']);

/** Makes every relative file path in `data` absolute against `base`, in place. */
export function resolveFilePaths(data: unknown, base: string): void {
  for (const setting of FILE_PATH_SETTINGS) {
    const keys = setting.split('.');
    let holder: unknown = data;
    for (const key of keys.slice(0, -1)) holder = isRecord(holder) ? holder[key] : undefined;
    const last = keys[keys.length - 1] as string;
    if (!isRecord(holder)) continue;
    const value = holder[last];
    if (typeof value === 'string' && value !== '' && !NOT_A_PATH.has(value) && !isAbsolute(value)) {
      holder[last] = resolve(base, value);
    }
  }
}

/** Why a configured file cannot be used, for a problem line: `keys.file: "/x" does not exist — …`. */
export function unreadableFileReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES') return 'is not readable (permission denied)';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'GH_NOT_REGULAR_FILE') return 'is not a regular file (a directory, a FIFO, a device, a socket)';
  if (code === 'GH_FILE_TOO_LARGE') return `is larger than ${OPERATOR_FILE_LIMIT_BYTES / 1024 / 1024} MB`;
  if (code === 'GH_FILE_NOT_UTF8') return 'is not UTF-8 text';
  return `cannot be read (${code ?? 'error'})`;
}
