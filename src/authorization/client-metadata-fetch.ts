import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';
import { isLoopbackAddress, isPublicAddress } from './address-policy.ts';
import { GatehouseError } from '../errors/internal-errors.ts';

/**
 * Fetching a Client ID Metadata Document (CIMD) is fetching an attacker-chosen URL from inside our network, so every
 * fetch goes through this guard:
 * - https only (http only for loopback, and only in development with `allowLoopback`), no userinfo in the URL;
 * - we resolve the name ourselves and refuse it if ANY address is not public unicast (private, loopback, link-local,
 *   CGNAT, cloud metadata, unspecified, multicast) — a round-robin answer cannot slip a private address in;
 * - the socket connects to the address we vetted (undici `connect.lookup`), so a second DNS answer (rebinding) can
 *   never swap in another address between the check and the connection;
 * - no redirects are followed (a 3xx is an error), so a public URL cannot bounce us to an internal one;
 * - a time limit for the whole exchange and a size cap enforced while streaming (we abort past `maxBytes`, never
 *   buffer an arbitrarily large body).
 *
 * @see draft-ietf-oauth-client-id-metadata-document §4, §6 (security considerations: SSRF)
 */

export interface GuardedFetchOptions {
  maxBytes: number;
  timeoutMs: number;
  /** Development only: loopback addresses (and http on them) are allowed. */
  allowLoopback?: boolean;
  /**
   * A narrow exception for tests: an address the policy would refuse is allowed when this says so for that host
   * (e.g. only `cimd.test` → 127.0.0.1), so every other loopback target is still refused.
   */
  allowAddress?: (address: string, hostname: string) => boolean;
  /** Name resolution; defaults to the system resolver (all addresses). */
  resolve?: (hostname: string) => Promise<string[]>;
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  extraCa?: string;
}

export type GuardedFetch = (input: string | URL, init?: { headers?: ConstructorParameters<typeof Headers>[0]; signal?: AbortSignal | null }) => Promise<Response>;

/** Why a document could not be fetched; the message is safe to log but is not shown to clients verbatim. */
export class ClientMetadataFetchError extends GatehouseError {
  readonly reason: 'scheme' | 'address' | 'redirect' | 'too_large' | 'status' | 'network';
  constructor(reason: ClientMetadataFetchError['reason'], message: string, options?: { cause?: unknown }) {
    super('GH_CLIENT_METADATA_FETCH', message, options);
    this.name = 'ClientMetadataFetchError';
    this.reason = reason;
  }
}

async function systemResolve(hostname: string): Promise<string[]> {
  const answers = await dnsLookup(hostname, { all: true, verbatim: true });
  return answers.map((answer) => answer.address);
}

/** A `lookup` that answers only with the address we already vetted (the DNS-rebinding defence). */
function pinnedLookup(address: string): LookupFunction {
  const family = isIP(address);
  return (_hostname, options, callback) => {
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

export function createGuardedFetch(options: GuardedFetchOptions): GuardedFetch {
  const { maxBytes, timeoutMs, allowLoopback = false, allowAddress, resolve = systemResolve, extraCa } = options;
  const ca = extraCa === undefined ? undefined : [...rootCertificates, extraCa];

  const addressAllowed = (address: string, hostname: string): boolean =>
    isPublicAddress(address) ||
    (allowLoopback && isLoopbackAddress(address)) ||
    (allowAddress?.(address, hostname) ?? false);

  async function vet(url: URL): Promise<string> {
    if (url.username !== '' || url.password !== '') {
      throw new ClientMetadataFetchError('scheme', 'credentials in the URL are not allowed');
    }
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    const addresses = isIP(hostname) !== 0 ? [hostname] : await resolve(hostname).catch((cause: unknown) => {
      throw new ClientMetadataFetchError('network', `cannot resolve ${hostname}`, { cause });
    });
    const first = addresses[0];
    if (first === undefined) throw new ClientMetadataFetchError('network', `no address for ${hostname}`);
    const refusedAddress = addresses.find((address) => !addressAllowed(address, hostname));
    if (refusedAddress !== undefined) {
      throw new ClientMetadataFetchError('address', `${hostname} resolves to a non-public address`);
    }
    if (url.protocol === 'http:' && !(allowLoopback && addresses.every(isLoopbackAddress))) {
      throw new ClientMetadataFetchError('scheme', 'only https URLs are fetched');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new ClientMetadataFetchError('scheme', 'only https URLs are fetched');
    }
    return first;
  }

  async function readCapped(body: ReadableStream<Uint8Array> | null, abort: AbortController): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    let received = 0;
    if (body === null) return Buffer.alloc(0);
    for await (const chunk of body) {
      received += chunk.byteLength;
      if (received > maxBytes) {
        abort.abort();
        throw new ClientMetadataFetchError('too_large', `document larger than ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  return async function guardedFetch(input, init = {}) {
    const url = new URL(String(input));
    const address = await vet(url);
    const abort = new AbortController();
    const signals = [abort.signal, AbortSignal.timeout(timeoutMs), ...(init.signal ? [init.signal] : [])];
    const dispatcher = new Agent({
      connect: { lookup: pinnedLookup(address), timeout: timeoutMs, ...(ca ? { ca } : {}) },
    });
    try {
      const response = await undiciFetch(url, {
        method: 'GET',
        headers: Object.fromEntries(new Headers(init.headers)),
        redirect: 'manual',
        dispatcher,
        signal: AbortSignal.any(signals),
      }).catch((cause: unknown) => {
        throw new ClientMetadataFetchError('network', `fetch of ${url.host} failed`, { cause });
      });
      if (response.status >= 300 && response.status < 400) {
        abort.abort();
        throw new ClientMetadataFetchError('redirect', 'redirects are not followed for client metadata documents');
      }
      const declared = Number(response.headers.get('content-length') ?? '0');
      if (declared > maxBytes) {
        abort.abort();
        throw new ClientMetadataFetchError('too_large', `document larger than ${maxBytes} bytes`);
      }
      const body = await readCapped(response.body as ReadableStream<Uint8Array> | null, abort);
      return new Response(new Uint8Array(body), { status: response.status, headers: new Headers([...response.headers]) });
    } finally {
      await dispatcher.destroy().catch(() => {});
    }
  };
}
