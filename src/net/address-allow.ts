// NODE_ADDRESS_ALLOW: where nodes may be registered and reached. A list of
// CIDRs (or single addresses), each optionally limited to ports:
//   10.0.0.0/8:22, 192.168.1.5:2222, [fd00::/8]:22-23, 172.16.0.0/12
// Address matching is node's own net.BlockList (IPv4 and IPv6, CIDR), so no
// CIDR arithmetic is written here.
//
// An IPv4 address matches IPv4 entries only, and an IPv6 address IPv6 entries
// only: BlockList on its own lets an IPv6 entry covering the mapped range
// (::/0, ::ffff:0:0/96) admit every IPv4 address, which is not what "[::/0]:22"
// says. An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is the IPv4 address it
// maps (a connection to it is an IPv4 connection), and an entry written that
// way is an IPv4 entry.

import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'

export interface AddressAllowEntry {
  /** As written in the setting, for messages. */
  text: string
  family: 'ipv4' | 'ipv6'
  subnet: BlockList
  /** Inclusive port range; null: any port. */
  ports: { from: number; to: number } | null
}

export class AddressAllowList {
  constructor(readonly entries: readonly AddressAllowEntry[]) {}

  /** True when some entry covers this IP address (literal) and port. */
  allows(ip: string, port: number): boolean {
    return this.#matching(ip).some((e) => e.ports === null || (port >= e.ports.from && port <= e.ports.to))
  }

  /** True when some entry covers this IP address (literal) on some port. */
  allowsAddress(ip: string): boolean {
    return this.#matching(ip).length > 0
  }

  toString(): string {
    return this.entries.map((e) => e.text).join(', ')
  }

  #matching(ip: string): AddressAllowEntry[] {
    const address = canonicalAddress(ip)
    if (address === null) return []
    return this.entries.filter((e) => e.family === address.family && e.subnet.check(address.ip, address.family))
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
  const [, written = '', lengthText, portsText] = match
  const family = isIP(written)
  if (family === 0) return fail('not an IP address')
  const maxLength = family === 4 ? 32 : 128
  const length = lengthText === undefined ? maxLength : Number(lengthText)
  if (!Number.isInteger(length) || length < 0 || length > maxLength) return fail(`the prefix length must be 0 to ${maxLength}`)
  const ports = portsText === undefined ? null : parsePorts(portsText, fail)
  let address = { ip: written, family: family === 4 ? ('ipv4' as const) : ('ipv6' as const) }
  let prefix = length
  const mapped = family === 6 ? mappedIpv4(written) : null
  if (mapped !== null) {
    // ::ffff:a.b.c.d/len: the IPv4 subnet a.b.c.d/(len - 96); shorter prefixes reach outside the mapped range.
    if (length < 96) return fail('an IPv4-mapped prefix must be /96 or longer (write the IPv4 subnet instead)')
    address = { ip: mapped, family: 'ipv4' }
    prefix = length - 96
  }
  const subnet = new BlockList()
  subnet.addSubnet(address.ip, prefix, address.family)
  return { text: item, family: address.family, subnet, ports }
}

function parsePorts(text: string, fail: (why: string) => never): { from: number; to: number } {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text)
  if (!match) return fail('ports are a number or a range from-to')
  const from = Number(match[1])
  const to = match[2] === undefined ? from : Number(match[2])
  if (from < 1 || to > 65535 || from > to) return fail('ports are 1 to 65535, from <= to')
  return { from, to }
}

/** The address as it is matched: an IPv4-mapped IPv6 address as its IPv4 address; null when not an IP literal. */
function canonicalAddress(ip: string): { ip: string; family: 'ipv4' | 'ipv6' } | null {
  const family = isIP(ip)
  if (family === 4) return { ip, family: 'ipv4' }
  if (family !== 6) return null
  const mapped = mappedIpv4(ip)
  return mapped === null ? { ip, family: 'ipv6' } : { ip: mapped, family: 'ipv4' }
}

/** a.b.c.d for an IPv4-mapped IPv6 address (::ffff:a.b.c.d, ::ffff:0a0b:0c0d, 0:0:0:0:0:ffff:...), else null. */
function mappedIpv4(ip: string): string | null {
  let canonical: string
  try {
    // The URL parser writes an IPv6 address in its one canonical (compressed, lowercase, hex) form.
    canonical = new URL(`http://[${ip.replace(/%.*$/, '')}]/`).hostname.slice(1, -1)
  } catch {
    return null
  }
  const match = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical)
  if (!match) return null
  const high = parseInt(match[1] as string, 16)
  const low = parseInt(match[2] as string, 16)
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`
}

// ---------------------------------------------------------------- resolving

/** How long a host name may take to resolve when it is checked against the list. */
export const ADDRESS_LOOKUP_TIMEOUT_MS = 3_000

/** A host name that did not resolve (in time). The message names the host only. */
export class AddressLookupError extends Error {
  override readonly name = 'AddressLookupError'
  constructor(
    readonly host: string,
    /** The resolver's code (ENOTFOUND, EAI_AGAIN, ...), or ETIMEOUT when it did not answer in time. */
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(`${host} could not be resolved (${code})`, options)
  }
}

/** Answers a host name with its IP addresses (all of them); rejects with the resolver's error. */
export type HostResolver = (host: string) => Promise<string[]>

/** The system's resolver (getaddrinfo: /etc/hosts, then DNS), as net.connect would use it. */
const systemResolver: HostResolver = async (host) => (await lookup(host, { all: true })).map((a) => a.address)

/** The IP addresses host stands for: itself when it is an IP literal, else what the resolver answers (all of them). */
export async function lookupAddresses(host: string, timeoutMs: number = ADDRESS_LOOKUP_TIMEOUT_MS, resolve: HostResolver = systemResolver): Promise<string[]> {
  if (isIP(host) !== 0) return [host]
  let timer: NodeJS.Timeout | undefined
  const answer = resolve(host)
  answer.catch(() => undefined)
  try {
    const found = await Promise.race([
      answer,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new AddressLookupError(host, 'ETIMEOUT')), timeoutMs)
      }),
    ])
    if (found.length === 0) throw new AddressLookupError(host, 'ENODATA')
    return found
  } catch (err) {
    if (err instanceof AddressLookupError) throw err
    const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : 'ENOTFOUND'
    throw new AddressLookupError(host, code, { cause: err })
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The first of host's addresses that the list allows for port (the address to
 * connect to, so that a later DNS answer cannot get around the check), or null
 * when none is. Rejects with AddressLookupError when a host name does not resolve.
 */
export async function allowedAddress(list: AddressAllowList, host: string, port: number, timeoutMs?: number, resolve?: HostResolver): Promise<string | null> {
  const addresses = await lookupAddresses(host, timeoutMs, resolve)
  return addresses.find((ip) => list.allows(ip, port)) ?? null
}
