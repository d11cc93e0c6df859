// NODE_ADDRESS_ALLOW: where nodes may be registered and reached. A list of
// CIDRs (or single addresses), each optionally limited to ports:
//   10.0.0.0/8:22, 192.168.1.5:2222, [fd00::/8]:22-23, 172.16.0.0/12
// Address matching is node's own net.BlockList (IPv4 and IPv6, CIDR), so no
// CIDR arithmetic is written here.

import { BlockList, isIP } from 'node:net'

export interface AddressAllowEntry {
  /** As written in the setting, for messages. */
  text: string
  subnet: BlockList
  /** Inclusive port range; null: any port. */
  ports: { from: number; to: number } | null
}

export class AddressAllowList {
  constructor(readonly entries: readonly AddressAllowEntry[]) {}

  /** True when some entry covers this IP address (literal) and port. */
  allows(ip: string, port: number): boolean {
    const family = isIP(ip)
    if (family === 0) return false
    const type = family === 4 ? 'ipv4' : 'ipv6'
    return this.entries.some((e) => e.subnet.check(ip, type) && (e.ports === null || (port >= e.ports.from && port <= e.ports.to)))
  }

  toString(): string {
    return this.entries.map((e) => e.text).join(', ')
  }
}

/** Parses the setting; throws an Error whose message names the entry at fault. */
export function parseAddressAllowList(text: string): AddressAllowList {
  const items = text.split(/[\s,]+/).filter((s) => s !== '')
  if (items.length === 0) throw new Error('expected a comma-separated list of CIDRs, each optionally with :port or :from-to')
  if (items.length > 1000) throw new Error('at most 1000 entries')
  return new AddressAllowList(items.map(parseEntry))
}

function parseEntry(item: string): AddressAllowEntry {
  // [v6/len]:ports, v4/len:ports, or a bare address/CIDR (a bare IPv6 has no port part).
  const match = /^\[([0-9a-fA-F:.]+)(?:\/(\d{1,3}))?\](?::(.+))?$/.exec(item) ?? /^([0-9.]+)(?:\/(\d{1,2}))?(?::(.+))?$/.exec(item) ?? /^([0-9a-fA-F:]*:[0-9a-fA-F:.]*)(?:\/(\d{1,3}))?$/.exec(item)
  const fail = (why: string): never => {
    throw new Error(`${JSON.stringify(item.slice(0, 60))}: ${why}`)
  }
  if (!match) return fail('expected a CIDR such as 10.0.0.0/8, 10.0.0.5:22 or [fd00::/8]:22')
  const [, address = '', lengthText, portsText] = match
  const family = isIP(address)
  if (family === 0) return fail('not an IP address')
  const maxLength = family === 4 ? 32 : 128
  const length = lengthText === undefined ? maxLength : Number(lengthText)
  if (!Number.isInteger(length) || length < 0 || length > maxLength) return fail(`the prefix length must be 0 to ${maxLength}`)
  const subnet = new BlockList()
  subnet.addSubnet(address, length, family === 4 ? 'ipv4' : 'ipv6')
  return { text: item, subnet, ports: portsText === undefined ? null : parsePorts(portsText, fail) }
}

function parsePorts(text: string, fail: (why: string) => never): { from: number; to: number } {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text)
  if (!match) return fail('ports are a number or a range from-to')
  const from = Number(match[1])
  const to = match[2] === undefined ? from : Number(match[2])
  if (from < 1 || to > 65535 || from > to) return fail('ports are 1 to 65535, from <= to')
  return { from, to }
}
