import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, type JSONWebKeySet } from 'jose';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import { generateKeySet, serializeKeySet } from '../../src/keys/key-set.ts';
import type { BackendName } from './target.ts';

/**
 * The key set Gatehouse loads from its key file, and access tokens signed with it exactly as Gatehouse signs its
 * own (RFC 9068 `at+jwt`, issuer = Gatehouse's public URL, audience = the route's URL), so the load needs no
 * authorization flow. The Express peer verifies the same tokens against the same public keys.
 */
export interface BenchCredentials {
  issuer: string;
  keyFile: string;
  publicJwks: JSONWebKeySet;
  /** Signs one token per backend for a target at `origin` (its audience is `${origin}/<backend>`). */
  tokensFor(origin: string): Promise<(backend: BackendName) => string>;
}

const BACKENDS: BackendName[] = ['canned', 'json', 'sse', 'legacy', 'hold'];

export async function createCredentials(dir: string, issuer: string): Promise<BenchCredentials> {
  const keySet = generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' });
  const keyFile = join(dir, 'gatehouse.keys.json');
  await writeFile(keyFile, serializeKeySet(keySet), { mode: 0o600 });
  const keyring = keyringFromKeySet(keySet);
  const key = keyring.currentSigningKey();
  const sign = (audience: string) =>
    new SignJWT({ client_id: 'bench', scope: 'mcp:tools', gid: 'bench-grant' })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject('bench/user')
      .setJti(`bench-${audience}`)
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(key.privateKey);
  return {
    issuer,
    keyFile,
    publicJwks: keyring.publicJwks(),
    async tokensFor(origin) {
      const tokens = new Map<BackendName, string>();
      for (const backend of BACKENDS) tokens.set(backend, await sign(`${origin}/${backend}`));
      return (backend) => tokens.get(backend)!;
    },
  };
}
