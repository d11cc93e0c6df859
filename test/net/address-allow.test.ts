// NODE_ADDRESS_ALLOW's list: parsing, matching (families kept apart, IPv4-mapped
// addresses as the IPv4 address they are, ports), and resolving a host name to
// the address a connection may go to.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AddressLookupError, allowedAddress, lookupAddresses, parseAddressAllowList } from '../../src/net/address-allow.ts'
import { testResolver } from '../support/resolver.ts'

describe('NODE_ADDRESS_ALLOW', () => {
  it('parses CIDRs, single addresses and port ranges, for both families', () => {
    const list = parseAddressAllowList('10.0.0.0/8:22, 192.168.1.5:2222 [fd00::/8]:22-23,172.16.0.0/12  ::1')
    assert.deepEqual(
      list.entries.map((e) => [e.text, e.family, e.ports]),
      [
        ['10.0.0.0/8:22', 'ipv4', { from: 22, to: 22 }],
        ['192.168.1.5:2222', 'ipv4', { from: 2222, to: 2222 }],
        ['[fd00::/8]:22-23', 'ipv6', { from: 22, to: 23 }],
        ['172.16.0.0/12', 'ipv4', null],
        ['::1', 'ipv6', null],
      ],
    )
    assert.equal(list.toString(), '10.0.0.0/8:22, 192.168.1.5:2222, [fd00::/8]:22-23, 172.16.0.0/12, ::1')
  })

  it('refuses what is not a list of CIDRs, naming the entry', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /comma-separated list/],
      [' , ', /comma-separated list/],
      ['example.com', /"example\.com": expected a CIDR/],
      ['10.0.0.0/33', /"10\.0\.0\.0\/33": the prefix length must be 0 to 32/],
      ['[fd00::/129]', /the prefix length must be 0 to 128/],
      ['999.0.0.1', /not an IP address/],
      ['10.0.0.1:0', /ports are 1 to 65535/],
      ['10.0.0.1:70000', /ports are 1 to 65535/],
      ['10.0.0.1:23-22', /from <= to/],
      ['10.0.0.1:ssh', /ports are a number or a range/],
      ['10.0.0.0/8:', /expected a CIDR/],
      ['fd00::/8:22', /expected a CIDR/],
      ['[::ffff:10.0.0.0/64]', /IPv4-mapped prefix must be \/96 or longer/],
    ]
    for (const [text, pattern] of cases) assert.throws(() => parseAddressAllowList(text), pattern, text)
    assert.throws(() => parseAddressAllowList(Array.from({ length: 1001 }, (_, i) => `10.0.${i >> 8}.${i & 255}`).join(',')), /at most 1000/)
  })

  it('allows an address only on the ports its entry names', () => {
    const list = parseAddressAllowList('10.0.0.0/8:22, 192.168.1.5:2222-2223, 172.16.0.0/12, [fd00::/8]:22')
    assert.equal(list.allows('10.1.2.3', 22), true)
    assert.equal(list.allows('10.1.2.3', 23), false)
    assert.equal(list.allows('11.0.0.1', 22), false)
    assert.equal(list.allows('192.168.1.5', 2223), true)
    assert.equal(list.allows('192.168.1.5', 2224), false)
    assert.equal(list.allows('192.168.1.6', 2222), false)
    assert.equal(list.allows('172.31.255.255', 1), true)
    assert.equal(list.allows('172.32.0.0', 22), false)
    assert.equal(list.allows('fd12:3456::1', 22), true)
    assert.equal(list.allows('FD12:3456::1', 22), true, 'IPv6 in capitals is the same address')
    assert.equal(list.allows('fd12:3456::1', 2222), false)
    assert.equal(list.allows('fe80::1', 22), false)
    // allowsAddress: on some port (the registration form says which field is at fault).
    assert.equal(list.allowsAddress('10.1.2.3'), true)
    assert.equal(list.allowsAddress('11.0.0.1'), false)
  })

  it('anything that is not an IP literal is not allowed', () => {
    const list = parseAddressAllowList('0.0.0.0/0, [::/0]')
    for (const host of ['localhost', 'example.com', '', '127.1', '010.0.0.1', '10.0.0.1:22', '[::1]']) {
      assert.equal(list.allows(host, 22), false, host)
    }
  })

  it('keeps the families apart: an IPv6 entry admits no IPv4 address', () => {
    // node's BlockList alone would let [::/0] (which covers ::ffff:0:0/96) admit every IPv4 address.
    const v6Only = parseAddressAllowList('[::/0]:22')
    assert.equal(v6Only.allows('2001:db8::1', 22), true)
    assert.equal(v6Only.allows('127.0.0.1', 22), false)
    assert.equal(v6Only.allows('10.0.0.1', 22), false)
    const v4Only = parseAddressAllowList('0.0.0.0/0:22')
    assert.equal(v4Only.allows('10.0.0.1', 22), true)
    assert.equal(v4Only.allows('::1', 22), false)
    assert.equal(v4Only.allows('2001:db8::1', 22), false)
  })

  it('an IPv4-mapped IPv6 address is the IPv4 address it maps, whichever way either is written', () => {
    const list = parseAddressAllowList('10.0.0.0/8:22')
    assert.equal(list.allows('::ffff:10.1.2.3', 22), true)
    assert.equal(list.allows('::ffff:a01:203', 22), true)
    assert.equal(list.allows('0:0:0:0:0:ffff:10.1.2.3', 22), true)
    assert.equal(list.allows('::ffff:127.0.0.1', 22), false)
    assert.equal(list.allows('::ffff:10.1.2.3', 23), false)
    // A mapped entry is an IPv4 entry: it admits the IPv4 address, and its mapped form.
    const mapped = parseAddressAllowList('[::ffff:192.168.0.0/112]:22')
    assert.deepEqual(mapped.entries.map((e) => e.family), ['ipv4'])
    assert.equal(mapped.allows('192.168.7.7', 22), true)
    assert.equal(mapped.allows('::ffff:192.168.7.7', 22), true)
    assert.equal(mapped.allows('192.169.0.1', 22), false)
    assert.equal(mapped.allows('2001:db8::1', 22), false)
  })

  it('resolves: an IP literal is itself, a name its addresses, a name that does not resolve an AddressLookupError naming it', async () => {
    assert.deepEqual(await lookupAddresses('10.0.0.1'), ['10.0.0.1'])
    assert.deepEqual(await lookupAddresses('fd00::1'), ['fd00::1'])
    assert.ok((await lookupAddresses('localhost', undefined, testResolver)).some((ip) => ip === '127.0.0.1' || ip === '::1'))
    await assert.rejects(lookupAddresses('no-such-node.invalid', undefined, testResolver), (err) => err instanceof AddressLookupError && err.host === 'no-such-node.invalid' && /^no-such-node\.invalid could not be resolved/.test(err.message))
  })

  it('allowedAddress: the first allowed address of the host (the one to connect to), or null', async () => {
    const list = parseAddressAllowList('127.0.0.1:2222, [::1]:2222')
    assert.equal(await allowedAddress(list, '127.0.0.1', 2222), '127.0.0.1')
    assert.equal(await allowedAddress(list, '127.0.0.1', 22), null)
    assert.equal(await allowedAddress(list, '10.0.0.1', 2222), null)
    assert.match((await allowedAddress(list, 'localhost', 2222, undefined, testResolver)) ?? '', /^(127\.0\.0\.1|::1)$/)
    assert.equal(await allowedAddress(list, 'localhost', 22, undefined, testResolver), null)
    await assert.rejects(allowedAddress(list, 'no-such-node.invalid', 2222, undefined, testResolver), AddressLookupError)
  })
})
