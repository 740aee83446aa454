import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { GatehouseError } from '../errors/internal-errors.ts';

/**
 * Hashes for secrets Gatehouse must recognise but never needs to read back: tokens and client secrets are stored
 * only as these hashes, so a copy of the store lets no one act as a client or a user.
 */

/**
 * SHA-256 of a token, base64url. Tokens we issue carry ≥ 128 bits of randomness, so no dictionary or brute-force
 * search can invert the hash and a slow KDF would add latency to every request for no security gain; lookups by hash
 * stay a single store get.
 */
export function hashToken(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64url');
}

/**
 * Compares two strings in time that does not depend on where they differ. Both sides are hashed first so the
 * comparison is over equal lengths and the length of the secret does not leak either.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a, 'utf8').digest();
  const right = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(left, right);
}

export interface ScryptParameters {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  r: number;
  p: number;
}

/**
 * Pre-registered client secrets may be chosen by a person, so they get a memory-hard KDF. N = 2^15, r = 8 (32 MiB,
 * tens of milliseconds) keeps token requests fast on a small node while making offline guessing expensive.
 */
export const defaultScryptParameters: ScryptParameters = { ln: 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Bounds for parameters read back from a stored hash, so a corrupted record cannot demand gigabytes of memory. */
const MAX_LN = 20;
const MAX_R = 16;
const MAX_P = 4;

/**
 * How many scrypt derivations run at once, and how many may wait for one. A check costs ≈ 90–170 ms of a core (on
 * libuv's pool, off the event loop but not off the machine), and a client id is no secret: anyone could send a
 * configured confidential client's id with wrong secrets, each token request buying a derivation, until every core
 * was busy with them. One at a time leaves the other cores to everyone else.
 *
 * Waiting is per stored hash (that is per client: scrypt hashes are the configured clients' secrets; the server's
 * own are `$sha256$`) and, within a client, per caller address; the next derivation goes to each client in turn,
 * and within it to each caller in turn. A flood of wrong secrets from one address fills that address's few places
 * for that client only (a wait past them is refused: SecretCheckBusyError, which the token endpoint answers 503
 * with Retry-After); another client's check waits for at most one derivation per client ahead of it, and the
 * client's own from another address for at most one per caller of that client. With one shared queue, twelve
 * requests with wrong secrets for one client id kept every other confidential client at 503; with one queue per
 * client, a flood kept that client itself at 503 (9 of 20 of its own concurrent requests served, and none while the
 * flood went on) until it had once proved its secret in this process — a fresh replica, after every restart. A
 * client that did so does not queue at all (verifiedSecrets). A client's callers together have at most
 * DERIVATIONS_WAITING_PER_CLIENT places: the bound on memory (scrypt hashes are configured clients, a fixed few),
 * and never one client's flood taking another's places (a cap shared by all clients let 33 addresses refuse every
 * client). What still holds a client off: a flood from its own address (behind the same NAT), or from enough
 * addresses to fill its own places.
 */
const DERIVATIONS_AT_ONCE = 1;
const DERIVATIONS_WAITING_PER_CALLER = 8;
const DERIVATIONS_WAITING_PER_CLIENT = 64;
let derivationsRunning = 0;

/** One client's waiting checks: by caller, served in turn, and how many wait in all. */
interface ClientQueue {
  callers: Map<string, Array<() => void>>;
  waiting: number;
}
/**
 * The waiting derivations by client (a stored hash, or `hashing` for new hashes), then by caller: clients are served
 * in turn, and within a client its callers in turn. Another client's check so waits for at most one derivation per
 * client ahead of it, however many addresses a flood of one client comes from.
 */
const derivationsWaiting = new Map<string, ClientQueue>();

/** A secret check that would have had to wait behind too many others of the same client. */
export class SecretCheckBusyError extends GatehouseError {
  constructor() {
    super('GH_SECRET_CHECK_BUSY', 'too many client-secret checks are running; retry shortly');
    this.name = 'SecretCheckBusyError';
  }
}

/** The first of a Map's queues with a waiting check, taken off and put back at the end if more wait in it. */
function takeInTurn<Q>(queues: Map<string, Q>, take: (queue: Q) => (() => void) | undefined, more: (queue: Q) => boolean): (() => void) | undefined {
  for (const [key, queue] of queues) {
    queues.delete(key);
    const next = take(queue);
    if (more(queue)) queues.set(key, queue);
    if (next !== undefined) return next;
  }
  return undefined;
}

/** The next waiting derivation: the next client in turn, and its next caller in turn. */
function nextWaiting(): (() => void) | undefined {
  return takeInTurn(
    derivationsWaiting,
    (client) => {
      const next = takeInTurn(client.callers, (waiting) => waiting.shift(), (waiting) => waiting.length > 0);
      if (next !== undefined) client.waiting -= 1;
      return next;
    },
    (client) => client.waiting > 0,
  );
}

/**
 * `client` is a stored hash (a configured client's secret, bounded by the places above) or `hashing` (new hashes:
 * the configuration's at start, unbounded); `caller` where the check came from.
 */
async function deriveKey(secret: string, salt: Buffer, params: ScryptParameters, queue: { client: string; caller?: string; bounded: boolean }): Promise<Buffer> {
  if (derivationsRunning < DERIVATIONS_AT_ONCE) derivationsRunning++;
  else {
    const client = derivationsWaiting.get(queue.client) ?? { callers: new Map<string, Array<() => void>>(), waiting: 0 };
    const caller = queue.caller ?? '';
    const waiting = client.callers.get(caller) ?? [];
    if (queue.bounded && (waiting.length >= DERIVATIONS_WAITING_PER_CALLER || client.waiting >= DERIVATIONS_WAITING_PER_CLIENT)) throw new SecretCheckBusyError();
    client.callers.set(caller, waiting);
    client.waiting += 1;
    derivationsWaiting.set(queue.client, client);
    // The finishing derivation hands its place to this one (derivationsRunning stays as it is).
    await new Promise<void>((resolve) => waiting.push(resolve));
  }
  try {
    const N = 2 ** params.ln;
    const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 };
    return await new Promise<Buffer>((resolve, reject) => {
      scrypt(secret, salt, HASH_BYTES, options, (error, key) => (error ? reject(error) : resolve(key)));
    });
  } finally {
    const next = nextWaiting();
    if (next === undefined) derivationsRunning--;
    else next();
  }
}

/**
 * Secrets that verified against a scrypt hash, as SHA-256 of (stored hash, secret): a client's next token request
 * costs a hash instead of a derivation, and a flood of wrong secrets cannot make the client itself wait behind them.
 * Only a secret that verified gets in, so a hit needs the right secret; the stored hash in the key drops an entry
 * when the secret is changed. The slow hash protects the store at rest; this memory holds a fast hash of a secret
 * that was already presented to this process in the clear.
 */
const VERIFIED_SECRETS_KEPT = 1_000;
const verifiedSecrets = new Set<string>();
const verifiedKey = (secret: string, hash: string): string => createHash('sha256').update(hash).update('\0').update(secret, 'utf8').digest('base64url');

function rememberVerified(key: string): void {
  if (verifiedSecrets.size >= VERIFIED_SECRETS_KEPT) verifiedSecrets.delete(verifiedSecrets.values().next().value as string);
  verifiedSecrets.add(key);
}

/** `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64url): the parameters travel with the hash so they can be raised later. */
export async function hashClientSecret(secret: string, params: ScryptParameters = defaultScryptParameters): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await deriveKey(secret, salt, params, { client: 'hashing', bounded: false });
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

const storedHash = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d)\$([A-Za-z0-9_-]{16,})\$([A-Za-z0-9_-]{43})$/;

const SCRYPT_PREFIX = '$scrypt$';
const GENERATED_PREFIX = '$sha256$';

/**
 * `$sha256$<hash>`: a client secret the authorization server generated itself (oidc-provider issues 64 random bytes
 * to a registered client). Nothing is left to guess offline in a 512-bit secret, so a slow KDF buys nothing — and
 * it cost ≈ 90 ms of CPU per token request: anyone could register a confidential client and send wrong secrets, and
 * every one of them took scrypt's time from the requests of everyone else.
 */
export function hashGeneratedSecret(secret: string): string {
  return `${GENERATED_PREFIX}${hashToken(secret)}`;
}

/** Whether a stored client secret is one of the hashes above (else it is a secret kept as it was configured). */
export function isHashedClientSecret(stored: string): boolean {
  return stored.startsWith(SCRYPT_PREFIX) || stored.startsWith(GENERATED_PREFIX);
}

/**
 * Long enough and in the alphabet of a generated secret (≥ 256 bits of base64url): only such a secret is hashed
 * the fast way, whatever reaches the store — anything shorter gets scrypt as a person's choice would.
 */
export function looksGenerated(secret: string): boolean {
  return secret.length >= 43 && /^[A-Za-z0-9_-]+$/.test(secret);
}

/**
 * True when `secret` matches a hash from hashClientSecret or hashGeneratedSecret; false for a wrong one or an unreadable
 * hash. Throws SecretCheckBusyError when a scrypt check would wait behind too many others. `caller` names where the
 * request came from (its address, an IPv6 one by its /64): each caller waits in its own places.
 */
export async function verifyClientSecret(secret: string, hash: string, caller = ''): Promise<boolean> {
  if (hash.startsWith(GENERATED_PREFIX)) return constantTimeEqual(hashGeneratedSecret(secret), hash);
  const match = storedHash.exec(hash);
  if (!match) return false;
  const params = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  if (params.ln < 1 || params.ln > MAX_LN || params.r < 1 || params.r > MAX_R || params.p < 1 || params.p > MAX_P) return false;
  const known = verifiedKey(secret, hash);
  if (verifiedSecrets.has(known)) return true;
  const expected = Buffer.from(match[5] ?? '', 'base64url');
  const actual = await deriveKey(secret, Buffer.from(match[4] ?? '', 'base64url'), params, { client: hash, caller, bounded: true });
  const verified = expected.length === actual.length && timingSafeEqual(expected, actual);
  if (verified) rememberVerified(known);
  return verified;
}
