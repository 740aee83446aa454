import { rm, writeFile, access } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { renderInitTemplate } from '../../config/init-template.ts';
import { generateKeySet, serializeKeySet } from '../../keys/key-set.ts';
import { CliUsageError, type CliCommand } from '../command.ts';

/**
 * `gatehouse init [--out gatehouse.yaml] [--force]`: writes a commented production config and, next to it, a key
 * set with fresh keys (mode 0600: it holds private keys). Refuses to overwrite either file without `--force`, because
 * replacing a key set invalidates every token and sealed record made with the old keys.
 */
export const initCommand: CliCommand = {
  path: ['init'],
  summary: 'Write a commented production config and a key set file with fresh keys.',
  options: {
    out: { type: 'string', short: 'o', description: 'Config file to write (default gatehouse.yaml); the key set goes next to it.' },
    algorithm: { type: 'string', description: 'Signing algorithm of the new key: ES256 (default) or EdDSA.' },
    force: { type: 'boolean', short: 'f', description: 'Overwrite existing files (the old keys are lost).' },
  },
  async run({ values, io }) {
    const algorithm = values.algorithm ?? 'ES256';
    if (algorithm !== 'ES256' && algorithm !== 'EdDSA') {
      throw new CliUsageError(`--algorithm must be ES256 or EdDSA (got "${String(algorithm)}")`);
    }
    const out = resolve(io.cwd, typeof values.out === 'string' ? values.out : 'gatehouse.yaml');
    const keysName = `${basename(out).replace(/\.ya?ml$/i, '')}.keys.json`;
    const keysFile = join(dirname(out), keysName);
    const force = values.force === true;
    if (!force) {
      for (const file of [out, keysFile]) {
        if (await exists(file)) throw new CliUsageError(`${file} already exists — pass --force to overwrite it (its keys would be lost)`);
      }
    }
    const now = Date.now();
    const keySet = generateKeySet({ signingAlgorithm: algorithm, now });
    await writeFresh(keysFile, serializeKeySet(keySet), 0o600, force);
    const template = renderInitTemplate({ keysFile: `./${keysName}`, signingAlgorithm: algorithm, writtenAt: new Date(now).toISOString().slice(0, 10) });
    await writeFresh(out, template, 0o644, force);
    io.stdout(`wrote ${out}\nwrote ${keysFile} (private keys, mode 0600)\n`);
    io.stdout(
      `next: set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE (set by AKS workload identity; or edit upstream.clientAuth), edit server.publicUrl and routes, then run: gatehouse config check ${out}\n`,
    );
    return 0;
  },
};

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** Creates the file with `mode` (removing an old one first under --force, so the mode applies and no old bits stay). */
async function writeFresh(file: string, text: string, mode: number, force: boolean): Promise<void> {
  if (force) await rm(file, { force: true });
  try {
    await writeFile(file, text, { mode, flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliUsageError(`${file} already exists — pass --force to overwrite it`);
    if (code === 'ENOENT') throw new CliUsageError(`cannot write ${file}: its directory does not exist`);
    if (code === 'EACCES') throw new CliUsageError(`cannot write ${file}: permission denied`);
    throw error;
  }
}
