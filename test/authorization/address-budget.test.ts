import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressBudgetKey } from '../../src/authorization/address-policy.ts';

/**
 * The registration budget counts an IPv6 client by its /64: a host or subscriber is routinely given a whole /64
 * (RFC 6177), and counting each of its addresses apart let one client register without limit.
 */
describe('the address a per-address budget counts under', () => {
  it('is the /64 of an IPv6 address, however it is spelled', () => {
    const spellings = ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0db8:0001:0002:0:0:0:7', '2001:DB8:1:2::abcd', 'fe80::1%eth0'.replace('fe80::1', '2001:db8:1:2::9')];
    for (const address of spellings) assert.equal(addressBudgetKey(address), '2001:db8:1:2::/64', address);
    assert.equal(addressBudgetKey('2001:db8:1:3::1'), '2001:db8:1:3::/64', 'the next /64 is another budget');
    assert.equal(addressBudgetKey('::1'), '0:0:0:0::/64');
    assert.equal(addressBudgetKey('2001:db8::'), '2001:db8:0:0::/64');
    assert.equal(addressBudgetKey('::ffff:1.2.3.4:5'), '::ffff:1.2.3.4:5', 'not an IP literal: unchanged');
  });

  it('is an IPv4 address itself, also inside an IPv4-mapped IPv6 address', () => {
    assert.equal(addressBudgetKey('203.0.113.7'), '203.0.113.7');
    assert.equal(addressBudgetKey('203.0.113.8'), '203.0.113.8');
    assert.equal(addressBudgetKey('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(addressBudgetKey('::ffff:cb00:7107'), '203.0.113.7');
  });
});
