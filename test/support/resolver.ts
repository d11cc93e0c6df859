// The host resolver every test app uses instead of the system's: the tests'
// machines may have a DNS server on a private address, and a test must send
// nothing past loopback, so no name is ever looked up there. It answers the
// names tests use for loopback and says ENOTFOUND, as getaddrinfo would, for
// every other name (a name that "does not resolve").

import type { HostResolver } from '../../src/net/address-allow.ts'

const KNOWN: Record<string, string[]> = {
  localhost: ['127.0.0.1', '::1'],
  // A name for the test sshd that is not an IP literal (resolving happens).
  'node.loopback.test': ['127.0.0.1'],
}

export const testResolver: HostResolver = async (host) => {
  const found = KNOWN[host.toLowerCase()]
  if (found) return found
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host })
}
