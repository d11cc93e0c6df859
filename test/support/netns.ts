// Network namespaces for the jump host tests: nodes that this process cannot
// reach, as behind a bastion, and the veth pairs that connect them to the
// jump hosts in front of them. Everything here is made by the test and
// removed by it (t.after), also when the test fails; a run that was killed
// before it could clean up is cleaned up by the next one (the names carry the
// pid of the process that made them).
//
// Addresses are link-local (169.254.0.0/16), in one /24 per run, each link a
// /30 of it. This process's namespace gets one end of the first link only,
// with the whole /24 on it, so that every address of the test's links is
// on-link there and a packet to one never takes this machine's default
// route: an address behind a jump host gets no ARP answer and fails, inside
// the test's links (the namespaces do not route: ip_forward is 0 in each).

import { execFileSync } from 'node:child_process'

/** One end of a link: a namespace made here, or this process's own ("host"). */
type LinkEnd = string | 'host'

interface NetworkLink {
  /** The address of each end, without the prefix length. */
  a: string
  b: string
}

export interface TestNetwork {
  /** Makes a namespace (loopback up, no forwarding) and answers its name. */
  namespace(label: string): string
  /** A veth pair between two ends; at most one link may have "host" as an end. */
  link(a: LinkEnd, b: LinkEnd): NetworkLink
  /** Established TCP connections to a local port inside a namespace (ss, as the kernel sees them). */
  establishedTo(namespace: string, port: number): number
  /** The namespace's passive TCP opens since it was made (/proc/net/snmp there): connections that reached it. */
  passiveOpens(namespace: string): number
  /** Removes every namespace and veth made here; throws when one is left. Idempotent. */
  remove(): void
}

const NAME_PREFIX = 'staticpod-jump-'
const VETH_PREFIX = 'sj'

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 })
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** What `ip netns list` and `ip link` show of ours: namespaces and veths whose maker's pid is given. */
function ours(pid: number | null): { namespaces: string[]; links: string[] } {
  const namespaces = ip('netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(NAME_PREFIX) && (pid === null || name.startsWith(`${NAME_PREFIX}${pid}-`)))
  const links = ip('-o', 'link', 'show')
    .split('\n')
    .map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1] ?? '')
    .filter((name) => new RegExp(`^${VETH_PREFIX}(\\d+)_`).test(name) && (pid === null || name.startsWith(`${VETH_PREFIX}${pid}_`)))
  return { namespaces, links }
}

/** Namespaces and veths left by test processes that are gone (killed before their cleanup ran). */
function removeLeftovers(): void {
  const { namespaces, links } = ours(null)
  const pidOf = (name: string, prefix: string): number => Number(name.slice(prefix.length).split(/[-_]/)[0])
  for (const link of links) if (!alive(pidOf(link, VETH_PREFIX))) ip('link', 'del', link)
  for (const ns of namespaces) if (!alive(pidOf(ns, NAME_PREFIX))) ip('netns', 'del', ns)
}

/**
 * The /24 of this run: 169.254.<n>.0/24 from the pid, so that two test runs
 * at once do not share one; never 169.254.169.x (cloud metadata services) or
 * .0 and .255.
 */
function subnetOf(pid: number): number {
  const third = 1 + (pid % 253)
  return third === 169 ? 170 : third
}

/** A test network; call remove() in t.after (it is safe to call before anything was made). */
export function createTestNetwork(): TestNetwork {
  if (process.getuid?.() !== 0) throw new Error('the jump host tests make network namespaces: run them as root (ip netns needs CAP_SYS_ADMIN)')
  try {
    ip('netns', 'list')
  } catch {
    throw new Error('the jump host tests need `ip netns`: install iproute2 (apt-get install -y iproute2)')
  }
  removeLeftovers()
  const pid = process.pid
  const third = subnetOf(pid)
  const namespaces: string[] = []
  const hostLinks: string[] = []
  let links = 0
  let hostLinked = false

  const inNamespace = (ns: string, ...args: string[]): string => ip('netns', 'exec', ns, ...args)

  return {
    namespace(label) {
      if (!/^[a-z0-9]{1,12}$/.test(label)) throw new Error(`namespace label ${label}: 1-12 of a-z0-9`)
      const name = `${NAME_PREFIX}${pid}-${label}`
      ip('netns', 'add', name)
      namespaces.push(name)
      inNamespace(name, 'ip', 'link', 'set', 'lo', 'up')
      // Explicitly (a kernel may be set to copy the host's setting into new namespaces); no sysctl binary needed.
      execFileSync('ip', ['netns', 'exec', name, 'tee', '/proc/sys/net/ipv4/ip_forward'], { input: '0\n', stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 })
      return name
    },

    link(a, b) {
      if (a === 'host' && b === 'host') throw new Error('a link needs a namespace at one end at least')
      if (a === 'host' || b === 'host') {
        if (hostLinked) throw new Error('only one link may end in this process\'s namespace')
        hostLinked = true
      }
      const index = links++
      if (index >= 60) throw new Error('at most 60 links (a /30 each in one /24)')
      const names = [`${VETH_PREFIX}${pid}_${index}a`, `${VETH_PREFIX}${pid}_${index}b`] as const
      if (names[1].length > 15) throw new Error(`veth name ${names[1]} is longer than 15 characters`)
      const addresses = [`169.254.${third}.${4 * index + 1}`, `169.254.${third}.${4 * index + 2}`] as const
      ip('link', 'add', names[0], 'type', 'veth', 'peer', 'name', names[1])
      // Removed explicitly at the end: a veth whose peer is in this namespace outlives the other namespace's processes.
      hostLinks.push(names[0])
      for (const [i, end] of [a, b].entries()) {
        const dev = names[i] as string
        const address = addresses[i] as string
        // The host's end covers the whole /24 (see the top of this file); the others their /30.
        const cidr = `${address}/${end === 'host' ? 24 : 30}`
        if (end === 'host') {
          ip('addr', 'add', cidr, 'dev', dev)
          ip('link', 'set', dev, 'up')
        } else {
          ip('link', 'set', dev, 'netns', end)
          inNamespace(end, 'ip', 'addr', 'add', cidr, 'dev', dev)
          inNamespace(end, 'ip', 'link', 'set', dev, 'up')
        }
      }
      return { a: addresses[0], b: addresses[1] }
    },

    establishedTo(namespace, port) {
      return inNamespace(namespace, 'ss', '-Htn', 'state', 'established', `( sport = :${port} )`).split('\n').filter((l) => l.trim() !== '').length
    },

    passiveOpens(namespace) {
      const lines = inNamespace(namespace, 'cat', '/proc/net/snmp').split('\n').filter((l) => l.startsWith('Tcp:'))
      const [names, values] = lines.map((l) => l.trim().split(/\s+/))
      const at = names?.indexOf('PassiveOpens') ?? -1
      if (at < 0 || !values) throw new Error(`no Tcp PassiveOpens in /proc/net/snmp of ${namespace}`)
      return Number(values[at])
    },

    remove() {
      for (const link of hostLinks.splice(0)) {
        // Gone already when its peer's namespace went first.
        if (ours(pid).links.includes(link)) ip('link', 'del', link)
      }
      for (const ns of namespaces.splice(0)) ip('netns', 'del', ns)
      const left = ours(pid)
      if (left.namespaces.length > 0 || left.links.length > 0) {
        throw new Error(`left behind: namespaces ${left.namespaces.join(', ') || 'none'}, links ${left.links.join(', ') || 'none'}`)
      }
    },
  }
}
