import { BlockList, isIP } from 'node:net';

/**
 * Which IP addresses an outbound fetch on behalf of a client (a CIMD document) may reach. Anything that is not a
 * public unicast address is refused: a client id URL is attacker-chosen, so without this check it would let anyone
 * make the gateway read its own admin ports, a cloud metadata service or an internal network (SSRF).
 *
 * @see RFC 6890 (special-purpose IPv4/IPv6 registries), draft-ietf-oauth-client-id-metadata-document §6 (SSRF)
 */
const refused = new BlockList();

const refusedIpv4: Array<[string, number, string]> = [
  ['0.0.0.0', 8, 'unspecified / "this network"'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade NAT'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local, includes cloud metadata 169.254.169.254'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4 relay anycast'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved, includes broadcast'],
];

const refusedIpv6: Array<[string, number, string]> = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::', 96, 'IPv4-compatible (deprecated; ::7f00:1 is 127.0.0.1)'],
  ['::ffff:0:0:0', 96, 'IPv4-translated (SIIT, RFC 7915: would reach an IPv4 address we did not vet)'],
  ['64:ff9b::', 96, 'NAT64 (would reach an IPv4 address we did not vet)'],
  ['64:ff9b:1::', 48, 'local-use NAT64'],
  ['100::', 64, 'discard'],
  ['2001::', 23, 'IETF protocol assignments (Teredo, ORCHID, …)'],
  ['2001:db8::', 32, 'documentation'],
  ['2002::', 16, '6to4 (embeds an arbitrary IPv4 address)'],
  ['3fff::', 20, 'documentation (RFC 9637)'],
  ['5f00::', 16, 'segment routing (SRv6) SIDs, RFC 9602'],
  ['fc00::', 7, 'unique local, includes AWS metadata fd00:ec2::254'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local (deprecated)'],
  ['ff00::', 8, 'multicast'],
];

for (const [network, prefix] of refusedIpv4) refused.addSubnet(network, prefix, 'ipv4');
// IPv4-mapped IPv6 (::ffff:a.b.c.d) is not listed: BlockList matches IPv4 addresses against it too, which would
// refuse every IPv4 address. mappedIpv4() unwraps such addresses and checks the IPv4 inside instead.
for (const [network, prefix] of refusedIpv6) refused.addSubnet(network, prefix, 'ipv6');

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * The IPv4 address inside an IPv4-mapped IPv6 address, if it is one: dotted (`::ffff:127.0.0.1`) or hex
 * (`::ffff:7f00:1`, which is how the URL parser normalises `[::ffff:127.0.0.1]`).
 */
function mappedIpv4(address: string): string | undefined {
  const dotted = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (dotted) return dotted[1];
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (!hex) return undefined;
  const high = Number.parseInt(hex[1] ?? '', 16);
  const low = Number.parseInt(hex[2] ?? '', 16);
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** True for an address that is a literal IP and globally routable unicast. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const mapped = mappedIpv4(address);
  if (mapped !== undefined) return isPublicAddress(mapped);
  return !refused.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const mapped = mappedIpv4(address);
  if (mapped !== undefined) return isLoopbackAddress(mapped);
  return loopback.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The network a per-address budget counts an address under: an IPv4 address itself (an IPv4-mapped IPv6 address as
 * its IPv4), an IPv6 address as its /64. One IPv6 subscriber or host is routinely given a whole /64 (RFC 6177), so
 * counting each of its 2^64 addresses apart let one client register without limit. Anything that is not an IP
 * literal is returned unchanged.
 */
export function addressBudgetKey(address: string): string {
  const family = isIP(address);
  if (family !== 6) return address;
  const mapped = mappedIpv4(address);
  if (mapped !== undefined) return mapped;
  // Expand `::` (a zone id, `%eth0`, names an interface, not a network) into the eight groups.
  const [head = '', tail] = address.split('%', 1)[0]!.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  // An embedded IPv4 tail (`::1.2.3.4`) is in the last 32 bits, outside the /64.
  return `${groups.slice(0, 4).map((group) => Number.parseInt(group, 16).toString(16)).join(':')}::/64`;
}
